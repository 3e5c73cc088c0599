"""Recommender latency, throughput and ANN recall (issue 6): Similar, Complementary and Inspire through
gRPC at 1, 4 and 16 concurrent clients, next to the raw Qdrant Edge query time of the very same
requests, on N synthetic items encoded by the real models (their dimension: 64 for the synthetic ones).

    .venv/bin/vitrine bench recommender -- --items 1000000          # builds the shards once (cached)
    .venv/bin/vitrine bench recommender -- --items 100000 --duration 5

Layers measured, per method:
  ann      the index calls a request makes (Qdrant Edge search / search_batch), timed around the calls,
           in-process, single thread: the "raw Qdrant Edge query latency for the same vectors";
  task     the whole task function in-process (lookups, towers, filters, interleaving): no gRPC;
  grpc     end to end through gRPC from a separate server process: a Python load generator (one
           process per client) and ghz (a Go load generator; `make ghz`),
           closed loop (throughput at saturation), and ghz again paced at half that throughput (open
           loop: the latency of a server with headroom, which is how a service is run).
Recall@10: ANN search vs exact search in the same engine, with the same filters, for each method's
index queries. Targets: Similar p99 at 4 clients <= 3 x ANN p99 and <= 15 ms; recall@10 >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, percentiles, write_result
from _loadgen import run_load
from _recommender_world import LEAVES, catalog, ensure_shard, open_shard, product_id
from google.protobuf.json_format import MessageToDict

from vitrine.api.requests import RequestParser
from vitrine.index.edge import EdgeIndex
from vitrine.index.port import ScoredItem, SearchFilter, SearchRequest
from vitrine.model.inference import InferenceModel, load_inference_model
from vitrine.serving.deadline import Deadline
from vitrine.serving.registry import ServedModel
from vitrine.serving.similar import similar
from vitrine.v1 import recommender_pb2 as pb

METHODS = ("Similar", "Complementary", "Inspire")
REPO = Path(__file__).resolve().parents[1]


class RecordingIndex:
    """The index as the tasks use it, timing (and keeping) every ANN query they make: wall time, and
    the calling thread's CPU time (the whole search's CPU when the shard searches in the calling
    thread, EdgeIndexConfig.search_threads=1, the default; it does not depend on the machine's load
    the way wall time does)."""

    def __init__(self, inner: EdgeIndex) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.ann_s = 0.0
        self.ann_cpu_s = 0.0
        self.requests: list[SearchRequest] = []

    def search(self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None) -> list[ScoredItem]:
        started, cpu = time.perf_counter(), time.thread_time()
        hits = self.inner.search(vector, limit, filter)
        self.ann_s += time.perf_counter() - started
        self.ann_cpu_s += time.thread_time() - cpu
        self.requests.append(SearchRequest(vector, limit, filter))
        return hits

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[ScoredItem]]:
        started, cpu = time.perf_counter(), time.thread_time()
        hits = self.inner.search_batch(requests)
        self.ann_s += time.perf_counter() - started
        self.ann_cpu_s += time.thread_time() - cpu
        self.requests.extend(requests)
        return hits

    def __getattr__(self, name: str) -> Any:  # get, count, ...: not ANN queries
        return getattr(self.inner, name)


def workload(
    leaf: np.ndarray,
    in_stock: np.ndarray,
    cmap: dict[str, list[str]],
    n_queries: int,
    seed: int = 7,
    similar_only: bool = False,
) -> dict[str, list[Any]]:
    """Requests per method: random in-stock anchors; complementary anchors from mapped categories;
    histories of 4 views over 2-3 categories."""
    rng = random.Random(seed)
    n = len(leaf)
    if similar_only:
        anchors = [i for i in (rng.randrange(n) for _ in range(n_queries * 3)) if in_stock[i]][:n_queries]
        return {"Similar": [pb.SimilarRequest(product_id=product_id(i), limit=10) for i in anchors]}
    by_leaf: dict[int, list[int]] = {}
    for i in range(min(n, 400_000)):  # enough anchors per category without scanning 1M in Python
        if in_stock[i]:
            by_leaf.setdefault(int(leaf[i]), []).append(i)
    anchors = [rng.randrange(n) for _ in range(n_queries * 3)]
    anchors = [i for i in anchors if in_stock[i]][:n_queries]
    mapped = [c for c in by_leaf if LEAVES[c] in cmap]
    compl = [rng.choice(by_leaf[rng.choice(mapped)]) for _ in range(n_queries)]
    histories = []
    for _ in range(n_queries):
        cats = rng.sample(list(by_leaf), rng.randint(2, 3))
        views = [rng.choice(by_leaf[rng.choice(cats)]) for _ in range(4)]
        histories.append([product_id(i) for i in views])
    return {
        "Similar": [pb.SimilarRequest(product_id=product_id(i), limit=10) for i in anchors],
        "Complementary": [pb.ComplementaryRequest(product_id=product_id(i), limit=10) for i in compl],
        "Inspire": [
            pb.InspireRequest(history=[pb.ViewedProduct(product_id=p) for p in h], limit=10)
            for h in histories
        ],
    }


def task_runner(method: str, served: ServedModel) -> Callable[[Any], Any]:
    from vitrine.serving.complementary import complementary
    from vitrine.serving.inspire import inspire

    parser = RequestParser()
    deadline = Deadline.none()
    if method == "Similar":
        return lambda r: similar(served, parser.similar(r), deadline)
    if method == "Complementary":
        return lambda r: complementary(served, parser.complementary(r), deadline)
    return lambda r: inspire(served, parser.inspire(r), deadline)


def in_process(
    method: str, shard: EdgeIndex, model: InferenceModel, requests: list[Any], threads: int
) -> dict[str, Any]:
    """ANN time and whole-task time per request, in this process, with `threads` concurrent callers."""
    lock = threading.Lock()
    ann: list[float] = []
    ann_cpu: list[float] = []
    task: list[float] = []
    queries: list[SearchRequest] = []

    def worker(part: list[Any]) -> None:
        recording = RecordingIndex(shard)
        served = ServedModel(method, model.model_version, model.task, recording, model)  # type: ignore[arg-type]
        run = task_runner(method, served)
        for r in part:
            before, cpu_before, started = recording.ann_s, recording.ann_cpu_s, time.perf_counter()
            run(r)
            elapsed = time.perf_counter() - started
            with lock:
                task.append(elapsed)
                ann.append(recording.ann_s - before)
                ann_cpu.append(recording.ann_cpu_s - cpu_before)
        with lock:
            queries.extend(recording.requests)

    parts = [requests[k::threads] for k in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, parts))
    seconds = time.perf_counter() - started
    return {
        "ann": percentiles(ann),
        "ann_mean_ms": 1000 * float(np.mean(ann)),
        "ann_cpu_mean_ms": 1000 * float(np.mean(ann_cpu)),
        "task": percentiles(task),
        "task_rps": len(task) / seconds,
        "queries": queries,
    }


def recall_at_10(shard: EdgeIndex, queries: list[SearchRequest], sample: int) -> dict[str, float]:
    rng = random.Random(3)
    picked = rng.sample(queries, min(sample, len(queries)))
    recalls = []
    for q in picked:
        k = min(10, q.limit)
        approx = {h.product_id for h in shard.search(q.vector, k, q.filter)}
        exact = {h.product_id for h in shard.exact_search(q.vector, k, q.filter)}
        if exact:
            recalls.append(len(approx & exact) / len(exact))
    return {"recall_at_10": float(np.mean(recalls)), "queries": len(recalls)}


def start_server(
    cache: Path, args: argparse.Namespace, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        str(REPO / "bench" / "_recommender_server.py"),
        "--cache",
        str(cache),
        "--similar-model",
        str(args.similar_model),
        "--complementary-model",
        str(args.complementary_model),
        "--workers",
        str(args.workers),
        *extra,
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"the benchmark server did not start: {line!r}")
    return process, f"127.0.0.1:{int(line.split()[1])}"


def find_ghz(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    # where `make ghz` installs it (the pinned version) first, then PATH and GOPATH (`go install`)
    cache = Path(os.environ.get("VITRINE_CACHE", Path.home() / ".cache" / "vitrine"))
    pinned = Path(os.environ.get("VITRINE_GO_BIN", cache / "go" / "bin")) / "ghz"
    gopath = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "ghz"
    for candidate in (pinned, shutil.which("ghz"), gopath):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def protoset(path: Path) -> Path:
    """The API's descriptors for ghz: ghz (0.93 and 0.120) cannot parse proto3 `optional` fields from .proto files
    (nor resolve them over reflection), but reads a compiled descriptor set."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{REPO / 'protos'}",
            f"-I{include}",
            "--include_imports",
            f"--descriptor_set_out={path}",
            "vitrine/v1/recommender.proto",
        ]
    )
    if rc != 0:
        raise SystemExit("protoc could not build the descriptor set for ghz")
    return path


def run_ghz(
    ghz: str,
    target: str,
    method: str,
    requests: list[Any],
    concurrency: int,
    duration_s: float,
    rps: float | None = None,
) -> dict[str, Any]:
    """Closed loop (each client sends its next request when the last one answered), or paced at
    `rps` requests/s in total (open loop: latency at a load the server can sustain)."""
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = protoset(Path(tmp) / "recommender.protoset")
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps([MessageToDict(r) for r in requests[:2000]]))
        out = Path(tmp) / "out.json"
        cmd = [
            ghz,
            "--insecure",
            f"--protoset={descriptors}",
            f"--call=vitrine.v1.Recommender.{method}",
            f"--data-file={data}",
            f"--concurrency={concurrency}",
            f"--connections={concurrency}",
            f"--duration={duration_s:g}s",
            *([f"--rps={max(1, round(rps))}"] if rps else []),
            "--format=json",
            f"--output={out}",
            target,
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        report = json.loads(out.read_text())
    latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    statuses = report.get("statusCodeDistribution", {})
    ok = statuses.get("OK", 0)
    # ghz closes its connections when the duration ends, failing the calls still in flight with
    # UNAVAILABLE "transport is closing": those are not server errors
    closing = sum(
        n for e, n in (report.get("errorDistribution") or {}).items() if "transport is closing" in e
    )
    return {
        "p50_ms": latency.get(50),
        "p90_ms": latency.get(90),
        "p99_ms": latency.get(99),
        "rps": report["rps"],
        "n": report["count"],
        "errors": report["count"] - ok - closing,
        "cut_at_end": closing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--similar-model", type=Path, default=Path("artifacts/models/synthetic-similar"))
    parser.add_argument(
        "--complementary-model", type=Path, default=Path("artifacts/models/synthetic-complementary")
    )
    parser.add_argument("--cache", type=Path, default=Path("artifacts/bench/recommender"))
    parser.add_argument("--queries", type=int, default=2000, help="requests per method (round-robin)")
    parser.add_argument("--recall-queries", type=int, default=300)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=16, help="gRPC server threads")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--ghz", default=None, help="path to ghz (default: on PATH or in $GOPATH/bin)")
    parser.add_argument("--no-ghz", action="store_true")
    parser.add_argument(
        "--paced-fraction",
        type=float,
        default=0.5,
        help="ghz also runs open loop at this fraction of its closed-loop throughput",
    )
    parser.add_argument("--note", default="", help="recorded with the results (e.g. machine load)")
    args = parser.parse_args()
    for name in ("similar_model", "complementary_model"):
        setattr(args, name, getattr(args, name).resolve())
    concurrency = [int(c) for c in args.concurrency.split(",")]
    methods = [m for m in METHODS if m in args.methods.split(",")]
    cache = (args.cache / str(args.items)).resolve()

    print(f"== world: {args.items:,} synthetic items, cache {cache}")
    leaf, in_stock = catalog(cache, args.items)
    models = {"similar": load_inference_model(args.similar_model, threads=1)}
    models["complementary"] = load_inference_model(args.complementary_model, threads=1)
    builds = {name: ensure_shard(cache, name, m, args.items) for name, m in models.items()}
    requests = workload(leaf, in_stock, models["complementary"].complementary_map, args.queries)
    shard_of = {"Similar": "similar", "Complementary": "complementary", "Inspire": "similar"}

    results: dict[str, Any] = {"items": args.items, "dim": models["similar"].dim, "builds": builds}
    shards = {name: open_shard(cache, name, m.dim) for name, m in models.items()}
    try:
        for method in methods:
            name = shard_of[method]
            print(f"== {method}: in-process ANN and task time, recall")
            # warm-up: a freshly opened shard reads its pages from disk on first touch
            in_process(method, shards[name], models[name], requests[method][: args.queries // 2], 2)
            single = in_process(method, shards[name], models[name], requests[method], 1)
            four = in_process(method, shards[name], models[name], requests[method], 4)
            results[method] = {
                "ann_1": single["ann"],
                "task_1": single["task"],
                "task_rps_1": single["task_rps"],
                "ann_4": four["ann"],
                "task_4": four["task"],
                "task_rps_4": four["task_rps"],
                "index_queries_per_request": len(single["queries"]) / len(requests[method]),
                "recall": recall_at_10(shards[name], single["queries"], args.recall_queries),
                "grpc": {},
            }
            print(
                f"   ann p50 {single['ann']['p50_ms']:.2f} p99 {single['ann']['p99_ms']:.2f} ms; "
                f"task p50 {single['task']['p50_ms']:.2f} p99 {single['task']['p99_ms']:.2f} ms; "
                f"recall@10 {results[method]['recall']['recall_at_10']:.4f}"
            )
    finally:
        for shard in shards.values():
            shard.close()

    ghz = None if args.no_ghz else find_ghz(args.ghz)
    if ghz is None and not args.no_ghz:
        print("ghz not found: `make ghz` installs the pinned version, or pass --no-ghz")
    results["ghz"] = ghz or "not run"
    server, target = start_server(cache, args)
    try:
        for method in methods:
            payloads = [r.SerializeToString() for r in requests[method]]
            for c in concurrency:
                load = run_load(target, method, payloads, c, args.duration, warmup_s=args.warmup)
                row: dict[str, Any] = {
                    "python": {**percentiles(load.latencies_s), "rps": load.rps, "errors": load.errors}
                }
                if ghz is not None:
                    row["ghz"] = run_ghz(ghz, target, method, requests[method], c, args.duration)
                    # the same clients paced at half the closed-loop throughput: a server with headroom
                    half = row["ghz"]["rps"] * args.paced_fraction
                    row["ghz_paced"] = {
                        **run_ghz(ghz, target, method, requests[method], c, args.duration, rps=half),
                        "target_rps": half,
                    }
                results[method]["grpc"][str(c)] = row
                g = row.get("ghz", {})
                print(
                    f"   {method} c={c:<2}  python p50 {row['python']['p50_ms']:.2f} p99 "
                    f"{row['python']['p99_ms']:.2f} ms {load.rps:,.0f}/s"
                    + (
                        f" | ghz p50 {g['p50_ms']:.2f} p99 {g['p99_ms']:.2f} ms {g['rps']:,.0f}/s"
                        f" | paced p99 {row['ghz_paced']['p99_ms']:.2f} ms at {row['ghz_paced']['rps']:,.0f}/s"
                        if g
                        else ""
                    )
                )
    finally:
        server.terminate()
        server.wait(30)

    print(summary(results, methods, concurrency))
    results["note"] = args.note
    results["load_average"] = os.getloadavg()
    results["machine"] = machine()
    write_result("recommender", results)


def summary(results: dict[str, Any], methods: list[str], concurrency: list[int]) -> str:
    lines = [
        "",
        f"{'method':<14}{'clients':>8}{'gen':>10}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'p99/ANN p99':>13}",
    ]
    for method in methods:
        r = results[method]
        ann_p99 = r["ann_1"]["p99_ms"]
        lines.append(
            f"{method:<14}{'ann':>8}{'':>10}{r['ann_1']['p50_ms']:>9.2f}{ann_p99:>9.2f}{'':>9}{'':>13}"
        )
        for c in concurrency:
            for gen in ("python", "ghz", "ghz_paced"):
                g = r["grpc"][str(c)].get(gen)
                if g:
                    ratio = g["p99_ms"] / ann_p99 if ann_p99 else float("nan")
                    lines.append(
                        f"{'':<14}{c:>8}{gen:>10}{g['p50_ms']:>9.2f}{g['p99_ms']:>9.2f}{g['rps']:>9.0f}{ratio:>13.2f}"
                    )
        lines.append(
            f"{'':<14}recall@10 {r['recall']['recall_at_10']:.4f} over {r['recall']['queries']} queries"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
