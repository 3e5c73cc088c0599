"""The benchmark's recommender: the library's gRPC server (the same servicer, registry and task code as
the service) over the cached shards, in its own process so that load generators do not share its GIL.

    python bench/_recommender_server.py --cache DIR --similar-model M --complementary-model M

Prints `PORT <n>` once serving; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
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
    parser.add_argument("--complementary-model", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--model-threads", type=int, default=1, help="as the service's model_threads")
    args = parser.parse_args()

    models = {}
    for name, model_dir in (("similar", args.similar_model), ("complementary", args.complementary_model)):
        model = load_inference_model(model_dir, threads=args.model_threads)
        index = open_shard(args.cache, name, model.dim)
        models[name] = ServedModel(
            name, model.model_version, model.task, index, model, closers=(index.close,)
        )
    router = ExperimentRouter(
        [Variant("default", similar="similar", complementary="complementary", inspire="similar")]
    )
    registry = ModelRegistry(ServingSnapshot(models, router))
    server = create_grpc_server(registry, RecommenderMetrics(), "127.0.0.1:0", args.workers)
    server.start()
    server.set_serving(True)
    print(f"PORT {server.port}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    while not stopped.wait(0.5):  # a bare wait() would not let the signal handler run
        pass
    server.stop(1)
    registry.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
