"""The one `vitrine` command. Each subcommand lives in its own module with a `register(subparsers)`.

The library's commands are the modules under `vitrine.cli` listed below. Other packages add theirs
through the entry-point group `vitrine.commands` (a name -> its `register` function): the services
register `vitrine encoder`, `vitrine recommender` and `vitrine feedback` so (pyproject.toml), and the library never
imports a service. Command modules import heavy dependencies (torch, onnxruntime, transformers)
inside their handlers, so `vitrine --help` and the light commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from vitrine.errors import VitrineError

# Modules under vitrine.cli that register top-level subcommands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "kafka",
    "produce",
    "dlq",
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
# Entry-point group of the commands other packages add (the services').
COMMANDS_GROUP = "vitrine.commands"

Register = Callable[[Any], None]


def command_registrars() -> list[Register]:
    """Every command's `register`: the library's, then those other packages declare."""
    library = [importlib.import_module(f"vitrine.cli.{name}").register for name in COMMAND_MODULES]
    added = [ep.load() for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda ep: ep.name)]
    return [*library, *added]


def build_parser(registrars: Sequence[Register] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitrine",
        description="Streaming content-based recommendations: two-tower models, Kafka, Qdrant, gRPC.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in command_registrars() if registrars is None else registrars:
        register(subparsers)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    # kafka-python logs every connection attempt at INFO, and its admin client its whole
    # configuration (SASL password included) at DEBUG: its loggers stay at WARNING whatever the level
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None, registrars: Sequence[Register] | None = None) -> int:
    """Run the CLI. `registrars` narrows the commands loaded (a service's `python -m` entry point
    passes only its own, so it starts without importing the training stack)."""
    parser = build_parser(registrars)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.handler(args) or 0)
    except VitrineError as e:
        print(f"vitrine {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
