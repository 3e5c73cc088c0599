"""Fault tests write what they measured as JSON, one file per scenario, which `bench/reliability_report.py`
renders into docs/RELIABILITY.md (never hand-copied from printed lines).

Files go to $VITRINE_RELIABILITY_REPORT_DIR (`make reliability` sets bench/results/reliability), or to
artifacts/reliability/ (ignored) in an ordinary test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def report_dir() -> Path:
    return Path(os.environ.get("VITRINE_RELIABILITY_REPORT_DIR", REPO / "artifacts" / "reliability"))


def record(scenario: str, test: str, command: str, **figures: Any) -> Path:
    """Write `<scenario>.json`: the figures plus how to reproduce them and the conditions."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    payload = {
        "scenario": scenario,
        "test": test,
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": commit,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        **figures,
    }
    directory = report_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path
