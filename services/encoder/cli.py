"""`vitrine encoder`: run the encoder service (consume catalog.products, write vectors).

The service's own command: `register` adds it to the `vitrine` CLI, which finds it through the
`vitrine.commands` entry point (pyproject.toml) without the library importing the service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("encoder", help="run the encoder service")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with an `encoder:` section")
    parser.add_argument("--model", dest="model_dir", type=Path, default=None, help="exported model directory")
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", default=None)
    parser.add_argument("--group-id", default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--max-wait-ms", type=int, default=None)
    parser.add_argument(
        "--model-threads", type=int, default=None, help="onnxruntime and BLAS threads (default 1)"
    )
    parser.add_argument("--vectors-topic", default=None, help="embedded mode: where vectors go")
    parser.add_argument(
        "--index-mode",
        choices=("embedded", "server"),
        default=None,
        help="embedded: write the vectors topic; server: write a Qdrant collection",
    )
    parser.add_argument(
        "--sink", choices=("kafka", "qdrant"), default=None, help="deprecated: --index-mode embedded|server"
    )
    parser.add_argument("--qdrant-url", default=None)
    parser.add_argument("--qdrant-collection", default=None)
    parser.add_argument(
        "--qdrant-alias", default=None, help="point this alias at the collection once caught up"
    )
    parser.add_argument(
        "--exactly-once",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="embedded mode: batches as Kafka transactions, fencing paused zombies (default on)",
    )
    parser.add_argument(
        "--instance-id", default=None, help="part of the transactional.id (default: a free slot on this host)"
    )
    parser.add_argument("--transactional-id", default=None, help="the producer's transactional.id")
    parser.add_argument("--transaction-timeout-ms", type=int, default=None)
    parser.add_argument(
        "--backfill",
        action="store_const",
        const=True,
        default=None,
        help="build a new index for this model: own group, own vectors topic/collection, replay from the start",
    )
    parser.add_argument(
        "--exit-when-caught-up",
        action="store_const",
        const=True,
        default=None,
        help="stop (after committing) once the log end seen at start is reached",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitrine.config import load_settings
    from vitrine.threads import limit_native_threads
    from vitrine_services.encoder.settings import EncoderSettings

    settings = load_settings(
        EncoderSettings,
        args.config,
        "encoder",
        model_dir=args.model_dir,
        kafka_bootstrap_servers=args.kafka_bootstrap_servers,
        group_id=args.group_id,
        metrics_port=args.metrics_port,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        vectors_topic=args.vectors_topic,
        index_mode=args.index_mode,
        sink=args.sink,
        qdrant_url=args.qdrant_url,
        qdrant_collection=args.qdrant_collection,
        qdrant_alias=args.qdrant_alias,
        backfill=args.backfill,
        exit_when_caught_up=args.exit_when_caught_up,
        exactly_once=args.exactly_once,
        instance_id=args.instance_id,
        transactional_id=args.transactional_id,
        transaction_timeout_ms=args.transaction_timeout_ms,
        model_threads=args.model_threads,
    )
    # before anything imports numpy: OpenBLAS sizes its pool once, at import
    limit_native_threads(settings.model_threads)
    from vitrine_services.encoder.service import run_encoder

    return run_encoder(settings)
