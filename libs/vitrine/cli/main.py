"""The one `vitrine` command. Each subcommand lives in its own module with a `register(subparsers)`.

Command modules import heavy dependencies (torch, onnxruntime, transformers) inside their handlers, so
`vitrine --help` and the light commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vitrine.errors import VitrineError

# Modules under vitrine.cli that register top-level subcommands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "kafka",
    "produce",
    "encoder",
    "recommender",
    "feedback",
    "demo",
    "train",
    "prior",
    "export",
    "finetune_nli",
    "eval",
    "report",
    "simulate",
    "bench",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitrine",
        description="Streaming content-based recommendations: two-tower models, Kafka, Qdrant, gRPC.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        module = importlib.import_module(f"vitrine.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, modules: Sequence[str] = COMMAND_MODULES) -> int:
    """Run the CLI. `modules` narrows the commands loaded (the services' `python -m` entry points
    load only their own, so they start without importing the training stack)."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every connection attempt at INFO; its warnings and errors still show
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args.handler(args) or 0)
    except VitrineError as e:
        print(f"vitrine {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
