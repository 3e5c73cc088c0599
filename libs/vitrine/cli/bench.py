"""`vitrine bench NAME [ARGS...]`: run a benchmark from bench/ (each prints ratios and writes JSON)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[3] / "bench"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("bench", help="run a benchmark from bench/")
    parser.add_argument("name", help="benchmark name (a file bench/NAME.py); `list` lists them")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    available = sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))
    if args.name == "list":
        print("\n".join(available))
        return 0
    if args.name not in available:
        raise SystemExit(f"unknown benchmark {args.name!r}; available: {', '.join(available) or 'none'}")
    passthrough = args.args[1:] if args.args[:1] == ["--"] else args.args
    return subprocess.call([sys.executable, str(BENCH_DIR / f"{args.name}.py"), *passthrough])
