"""Inspire(intent=...) encoding cost: the intent tower vs the item tower reading the intent as a title.

Per request, batch 1, through `InferenceModel` as the recommender runs it (onnxruntime, no torch):
`encode_intents([text])` (sentence encoder + projection) and, side by side in the same run on the
same texts, `encode_items([Product(title=text)])` (the fallback: hashed features + item tower). The
texts are the dataset's bundle intents, cycled; timings interleave the two so a load change hits
both. Then the whole served call, `vitrine.serving.inspire.inspire` with the API's intent defaults
(10 items) over a graph-less Qdrant Edge shard of the dataset's catalogue, with the intent tower's
hybrid re-scoring (its `depth` nearest candidates by tower score + TF-IDF) and without it (the
tower's nearest items), interleaved the same way. Prints p50/p99 per path and the ratios, writes
bench/results/intent_tower.json.

    .venv/bin/python bench/intent_tower.py --model artifacts/i13/models/electronic \\
        --dataset bundlerec:../shared/data/products/bundlerec/electronic --requests 2000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentiles, write_result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, type=Path, help="an exported model with an intent tower")
    parser.add_argument("--dataset", required=True, help="bundlerec:PATH (its bundle intents are the texts)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per path")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args()

    from vitrine.catalog.schema import Product
    from vitrine.data.datasets import load_dataset, parse_spec
    from vitrine.data.intents import intent_queries
    from vitrine.model.inference import load_inference_model

    model = load_inference_model(args.model, threads=args.threads)
    if model.intent is None:
        raise SystemExit(
            f"{args.model} has no exported intent tower (vitrine train --task intent; vitrine export)"
        )
    dataset = load_dataset(parse_spec(args.dataset))
    texts = [q.text for q in intent_queries(dataset)]
    paths = {
        "intent_tower": lambda t: model.encode_intents([t]),
        "item_tower_as_title": lambda t: model.encode_items([Product(product_id="", title=t)]),
    }
    for fn in paths.values():  # warm-up
        for t in texts[:50]:
            fn(t)
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(args.requests):
        text = texts[i % len(texts)]
        for name, fn in paths.items():
            start = time.perf_counter()
            fn(text)
            timings[name].append(time.perf_counter() - start)
    result = {name: percentiles(v) for name, v in timings.items()}
    ratio = {q: result["intent_tower"][q] / result["item_tower_as_title"][q] for q in ("p50_ms", "p99_ms")}
    served = served_calls(args, model, dataset.products, texts)
    served_ratio = {q: served["rescored"][q] / served["tower_alone"][q] for q in ("p50_ms", "p99_ms")}
    load = os.getloadavg()
    print(f"{len(texts)} intents, {args.requests} requests per path, batch 1, {args.threads} thread(s)")
    print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    for name, r in result.items():
        print(f"{name:>20}: p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    print(f"intent tower / item tower: p50 x{ratio['p50_ms']:.1f}, p99 x{ratio['p99_ms']:.1f}")
    for name, r in served.items():
        print(f"{'inspire, ' + name:>20}: p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    print(f"re-scored / tower alone: p50 x{served_ratio['p50_ms']:.2f}, p99 x{served_ratio['p99_ms']:.2f}")
    write_result(
        "intent_tower",
        {
            "model": str(args.model),
            "text_encoder": model.intent.text_encoder,
            "threads": args.threads,
            "requests": args.requests,
            "load_average": list(load),
            "latency": result,
            "ratio_intent_over_item": ratio,
            "served_inspire": served,
            "ratio_rescored_over_tower_alone": served_ratio,
            "catalogue": len(dataset.products),
        },
    )
    return 0


def served_calls(
    args: argparse.Namespace, model: Any, products: Sequence[Any], texts: list[str]
) -> dict[str, dict[str, float]]:
    """Inspire(intent) as served, with and without the intent tower's re-scoring, interleaved."""
    from dataclasses import replace

    from vitrine.eval.intent import IntentKnobs
    from vitrine.eval.served import exact_served_model
    from vitrine.model.inference import load_inference_model
    from vitrine.serving.deadline import Deadline
    from vitrine.serving.inspire import inspire

    if model.intent.rescoring is None:
        raise SystemExit(f"{args.model}'s intent tower does not re-score (trained with lexical weight 0)")
    alone = load_inference_model(args.model, threads=args.threads, intent_rescoring=False)
    knobs = IntentKnobs()
    timings: dict[str, list[float]] = {"rescored": [], "tower_alone": []}
    with exact_served_model(model, products) as served:
        paths = {"rescored": served, "tower_alone": replace(served, model=alone)}
        for i in range(args.requests + 50):
            query = replace(knobs.query(texts[i % len(texts)]), limit=10)
            for name, s in paths.items():
                start = time.perf_counter()
                inspire(s, query, Deadline.none())
                if i >= 50:  # the first 50 warm up
                    timings[name].append(time.perf_counter() - start)
    return {name: percentiles(v) for name, v in timings.items()}


if __name__ == "__main__":
    raise SystemExit(main())
