"""`vitrine kafka start|status|stop`: the local broker users run for development and the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vitrine.stream.broker import free_port
from vitrine.stream.kafka import KafkaSettings, make_admin

pytestmark = pytest.mark.integration


def vitrine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitrine.cli.main", "--log-level", "WARNING", "kafka", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_start_status_restart_and_stop(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    data = str(tmp_path / "kafka")
    start = ["start", "--data-dir", data, "--port", str(port), "--controller-port", str(controller)]
    try:
        first = vitrine(*start)
        assert first.returncode == 0, first.stderr
        assert "catalog.products" in first.stdout  # the catalogue topics were created
        assert vitrine("status", "--data-dir", data).returncode == 0
        again = vitrine(*start)
        assert again.returncode == 0 and "already running" in again.stdout

        admin = make_admin(KafkaSettings(f"127.0.0.1:{port}"))
        assert {"catalog.products", "catalog.vectors", "catalog.products.dlq"} <= set(admin.list_topics())
        admin.close()
    finally:
        stopped = vitrine("stop", "--data-dir", data)
    assert stopped.returncode == 0
    assert vitrine("status", "--data-dir", data).returncode == 1
    # a restart keeps the formatted storage and the topics
    restarted = vitrine(*start)
    try:
        assert restarted.returncode == 0, restarted.stderr
        assert "created topics: none" in restarted.stdout
    finally:
        vitrine("stop", "--data-dir", data)
