"""`vitrine eval`: offline evaluation. Each evaluation kind registers its own sub-subcommand."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# Modules under vitrine.cli whose `register(subparsers)` adds a `vitrine eval <kind>` command.
EVAL_MODULES: tuple[str, ...] = ("eval_recommend", "eval_retrieval", "eval_intent", "eval_inspire")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("eval", help="offline evaluation")
    eval_subparsers = parser.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    for name in EVAL_MODULES:
        importlib.import_module(f"vitrine.cli.{name}").register(eval_subparsers)
