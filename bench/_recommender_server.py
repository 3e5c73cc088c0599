"""The benchmark's recommender: the library's gRPC server (the same servicer, registry and task code as
the service) over the cached shards, in its own process so that load generators do not share its GIL.

    python bench/_recommender_server.py --cache DIR --similar-model M --complementary-model M
    python bench/_recommender_server.py --cache DIR --similar-model M --port 50051   # Similar only

Prints `PORT <n>` once serving; stops on SIGTERM. Several of these started with the same `--port`
(each on its own copy of the shard, `--similar-shard`: Qdrant Edge locks a shard's WAL) share it (gRPC binds with SO_REUSEPORT on Linux; the kernel spreads connections over them): the
process-per-core layout of docs/BENCHMARKS.md. Only uses the library's API that the previous
commits had too, so bench/serving_overhead.py can run it against an older library
(PYTHONPATH=<old checkout>/libs) for side-by-side runs.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import signal
import sys
import threading
import time
from pathlib import Path

from _recommender_world import open_shard

from vitrine.api.server import create_grpc_server
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--similar-model", type=Path, required=True)
    parser.add_argument(
        "--complementary-model", type=Path, default=None, help="without it: Similar and Inspire only"
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--model-threads", type=int, default=1, help="as the service's model_threads")
    parser.add_argument(
        "--record-impressions", default="", metavar="BOOTSTRAP", help="record impressions on this broker"
    )
    parser.add_argument("--interactions-topic", default="catalog.interactions")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument(
        "--similar-shard",
        default="similar",
        help="the similar model's shard folder in the cache (a shard is opened by one process at a time)",
    )
    parser.add_argument(
        "--search-threads",
        type=int,
        default=None,
        help="the shard's search pool (default: the library's; 0 = Qdrant Edge's own pool)",
    )
    args = parser.parse_args()
    gc_pauses = _watch_gc()

    models = {}
    dirs = [("similar", args.similar_model)]
    if args.complementary_model is not None:
        dirs.append(("complementary", args.complementary_model))
    for name, model_dir in dirs:
        model = load_inference_model(model_dir, threads=args.model_threads)
        shard = args.similar_shard if name == "similar" else name
        index = (
            open_shard(args.cache, shard, model.dim)
            if args.search_threads is None  # (an older library's EdgeIndexConfig has no such field)
            else open_shard(args.cache, shard, model.dim, search_threads=args.search_threads)
        )
        models[name] = ServedModel(
            name, model.model_version, model.task, index, model, closers=(index.close,)
        )
    complementary = "complementary" if "complementary" in models else None
    router = ExperimentRouter(
        [Variant("default", similar="similar", complementary=complementary, inspire="similar")]
    )
    registry = ModelRegistry(ServingSnapshot(models, router))
    metrics = RecommenderMetrics()
    recorder = None
    if args.record_impressions:  # as the service wires it (services/recommender/service.py)
        # imported here: an older library (serving_overhead's `before`) has no impression recorder
        from vitrine.feedback.recorder import ImpressionRecorder
        from vitrine.obs.metrics import ImpressionMetrics
        from vitrine.stream.kafka import KafkaSettings

        kafka = KafkaSettings(args.record_impressions, client_id="bench-impressions")
        recorder = ImpressionRecorder(
            kafka,
            args.interactions_topic,
            ImpressionMetrics(metrics.registry),
        ).start()
    address = f"127.0.0.1:{args.port}"
    options: dict[str, object] = {}
    if recorder is not None:
        options["impressions"] = recorder
    if "reuse_port" in inspect.signature(create_grpc_server).parameters:
        # several of these share one port on purpose (an older library had SO_REUSEPORT always on)
        options["reuse_port"] = True
    server = create_grpc_server(registry, metrics, address, args.workers, **options)  # type: ignore[arg-type]
    server.start()
    server.set_serving(True)
    print(f"PORT {server.port}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    while not stopped.wait(0.5):  # a bare wait() would not let the signal handler run
        pass
    server.stop(1)
    if recorder is not None:
        recorder.close()
        print(
            f"RECORDED {metrics.registry.get_sample_value('vitrine_recommender_impressions_recorded_total')}",
            flush=True,
        )
    print(f"GC {json.dumps(gc_pauses)}", flush=True)
    registry.close()
    sys.exit(0)


def _watch_gc() -> dict[str, list[float]]:
    """Each garbage collection's pause (ms) by generation, printed at exit: a tail-latency suspect."""
    pauses: dict[str, list[float]] = {"0": [], "1": [], "2": []}
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[str(info["generation"])].append(round(1000 * (time.perf_counter() - started[0]), 3))

    gc.callbacks.append(callback)
    return pauses


if __name__ == "__main__":
    main()
