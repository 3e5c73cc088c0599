"""Filtered ANN search under the two index layouts, side by side on the same items and requests
(issue 6): vitrine's layout (filter-aware HNSW links on category, seller and cluster fields, a 2,000-
point full-scan threshold; `vitrine.index.layout`) against the earlier one (Qdrant's defaults: links
on every field, a 10 MB full-scan threshold, i.e. 40,000 points at dimension 64).

    .venv/bin/vitrine bench filtered_search -- --items 200000

Complementary searches one leaf category per target and Inspire a few k-means clusters, so their
index queries are filtered to a few percent of the catalogue; Similar's only filters are stock and
deletion. Per layout and method: build time, ANN time per request (p50/p99, single thread, the same
requests), the whole task's time, and recall@10 against exact search with the same filters.
Shards are cached under artifacts/bench/recommender/<N>/ (the recommender benchmark reuses the
`graph` ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import write_result
from _recommender_world import LAYOUTS, catalog, ensure_shard, open_shard
from recommender import METHODS, in_process, recall_at_10, workload

from vitrine.model.inference import load_inference_model

SHARD_OF = {"Similar": "similar", "Complementary": "complementary", "Inspire": "similar"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--similar-model", type=Path, default=Path("artifacts/models/synthetic-similar"))
    parser.add_argument(
        "--complementary-model", type=Path, default=Path("artifacts/models/synthetic-complementary")
    )
    parser.add_argument("--cache", type=Path, default=Path("artifacts/bench/recommender"))
    parser.add_argument("--queries", type=int, default=600, help="requests per method")
    parser.add_argument("--recall-queries", type=int, default=300)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    args = parser.parse_args()
    layouts = [x for x in LAYOUTS if x in args.layouts.split(",")]
    cache = (args.cache / str(args.items)).resolve()

    print(f"== world: {args.items:,} synthetic items, cache {cache}")
    leaf, in_stock = catalog(cache, args.items)
    models = {
        "similar": load_inference_model(args.similar_model.resolve(), threads=1),
        "complementary": load_inference_model(args.complementary_model.resolve(), threads=1),
    }
    requests = workload(leaf, in_stock, models["complementary"].complementary_map, args.queries)
    results: dict[str, Any] = {"items": args.items, "layouts": {}}
    for layout in layouts:
        builds = {name: ensure_shard(cache, name, m, args.items, layout) for name, m in models.items()}
        shards = {name: open_shard(cache, name, m.dim, layout) for name, m in models.items()}
        per_method: dict[str, Any] = {"builds": builds}
        try:
            for method in METHODS:
                shard, model = shards[SHARD_OF[method]], models[SHARD_OF[method]]
                in_process(method, shard, model, requests[method][: args.queries // 3], 1)  # page in
                run = in_process(method, shard, model, requests[method], 1)
                per_method[method] = {
                    "ann": run["ann"],
                    "task": run["task"],
                    "recall": recall_at_10(shard, run["queries"], args.recall_queries),
                }
                print(
                    f"{layout:>5} {method:<13} ann p50 {run['ann']['p50_ms']:6.2f} p99 "
                    f"{run['ann']['p99_ms']:6.2f} ms  task p99 {run['task']['p99_ms']:6.2f} ms  "
                    f"recall@10 {per_method[method]['recall']['recall_at_10']:.4f}",
                    flush=True,
                )
        finally:
            for shard in shards.values():
                shard.close()
        results["layouts"][layout] = per_method

    if set(layouts) == set(LAYOUTS):
        graph, scan = results["layouts"]["graph"], results["layouts"]["scan"]
        ratios = {
            method: {
                "ann_p50": scan[method]["ann"]["p50_ms"] / graph[method]["ann"]["p50_ms"],
                "ann_p99": scan[method]["ann"]["p99_ms"] / graph[method]["ann"]["p99_ms"],
            }
            for method in METHODS
        }
        results["speedup_graph_over_scan"] = ratios
        print("\nANN speed-up of the graph layout over the scan layout (scan time / graph time):")
        for method, r in ratios.items():
            print(f"  {method:<13} p50 x{r['ann_p50']:.2f}  p99 x{r['ann_p99']:.2f}")
    write_result("filtered_search", results)


if __name__ == "__main__":
    main()
