"""Helpers shared by the benchmarks: timing, percentiles, result files, a model to measure with."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def percentiles(values_s: list[float]) -> dict[str, float]:
    a = np.asarray(values_s) * 1000
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "n": len(values_s),
    }


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "command": " ".join(sys.argv), "machine": machine(), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path


def ensure_model(model_dir: Path, products: int = 2000) -> Path:
    """Train + export the synthetic similar model if missing (the same commands as the demo)."""
    if (model_dir / "item_tower.onnx").exists():
        return model_dir
    vitrine = [sys.executable, "-m", "vitrine.cli.main"]
    task = ["train", "--task", "similar", "--dataset", f"synthetic:{products}", "--out", str(model_dir)]
    subprocess.run([*vitrine, *task], check=True)
    subprocess.run([*vitrine, "export", "--model", str(model_dir)], check=True)
    return model_dir


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
