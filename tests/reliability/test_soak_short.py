"""The CI-sized soak: the recommender under steady load while the encoder ingests updates, for
~30 seconds (bench/soak.py runs the 10-minute version and reports latency and memory slope)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_errors_under_load_while_the_catalogue_changes(model_dir: Path) -> None:
    sys.path.insert(0, str(BENCH))  # bench/soak.py imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("vitrine_bench_soak", BENCH / "soak.py")
        assert spec is not None and spec.loader is not None
        soak = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(soak)
        result = soak.run_soak(model_dir, minutes=0.5, qps=60, update_rate=30, clients=3, window_s=10)
    finally:
        sys.path.remove(str(BENCH))
    assert result["requests"] > 500
    assert result["errors"] == {} and result["error_rate"] == 0
    assert result["services_alive_at_end"]
    assert all(w["requests"] > 0 for w in result["windows"])
