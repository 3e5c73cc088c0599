"""`vitrine encoder`: run the encoder service (consume catalog.products, write vectors)."""

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
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitrine.config import load_settings
    from vitrine_services.encoder.service import run_encoder
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
    )
    return run_encoder(settings)
