"""Integration fixtures: a real trained + exported model (once per session) and a local stack."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SYNTHETIC_PRODUCTS = 600


@pytest.fixture(scope="session")
def model_dir() -> Iterator[Path]:
    """A similar-products model trained briefly on the synthetic catalogue and exported to ONNX, through
    the same CLI users run (`vitrine train`, `vitrine export`). VITRINE_TEST_MODEL_DIR reuses an
    exported model instead (faster local iterations)."""
    if reuse := os.environ.get("VITRINE_TEST_MODEL_DIR"):
        yield Path(reuse)
        return
    out = Path(tempfile.mkdtemp(prefix="vitrine-test-model-")) / "similar"
    vitrine = [sys.executable, "-m", "vitrine.cli.main", "--log-level", "WARNING"]
    train = [
        *vitrine,
        "train",
        "--task",
        "similar",
        "--dataset",
        f"synthetic:{SYNTHETIC_PRODUCTS}",
        "--out",
        str(out),
    ]
    for cmd in ([*train, "--epochs", "4", "--no-progress"], [*vitrine, "export", "--model", str(out)]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False
            )
    yield out
