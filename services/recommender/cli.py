"""`vitrine recommender`: run the recommender gRPC service.

The service's own command: `register` adds it to the `vitrine` CLI, which finds it through the
`vitrine.commands` entry point (pyproject.toml) without the library importing the service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recommender", help="run the recommender gRPC service"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file with a `recommender:` section")
    parser.add_argument("--model", dest="model_dir", type=Path, default=None, help="exported model directory")
    parser.add_argument(
        "--complementary-model",
        dest="complementary_model_dir",
        type=Path,
        default=None,
        help="a complementary model, its vectors in catalog.vectors.<model version>",
    )
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", default=None)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--index-path", type=Path, default=None)
    parser.add_argument("--vectors-topic", default=None, help="embedded mode: the vectors topic to serve")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitrine.config import load_settings
    from vitrine.threads import limit_native_threads
    from vitrine_services.recommender.settings import RecommenderSettings

    def read() -> RecommenderSettings:
        return load_settings(
            RecommenderSettings,
            args.config,
            "recommender",
            model_dir=args.model_dir,
            complementary_model_dir=args.complementary_model_dir,
            kafka_bootstrap_servers=args.kafka_bootstrap_servers,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            index_path=args.index_path,
            vectors_topic=args.vectors_topic,
        )

    settings = read()
    # before anything imports numpy: OpenBLAS sizes its pool once, at import
    limit_native_threads(settings.model_threads)
    from vitrine_services.recommender.service import run_recommender

    # SIGHUP re-reads the same file, environment and flags (hot reload of models and variants)
    return run_recommender(settings, reload_settings=read)
