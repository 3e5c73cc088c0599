"""A service started where another process already listens stops at once with a message naming the
setting to change: no traceback, and nothing created before it stops (issue 17: a second encoder on
one host died with a raw `OSError: Address already in use` after creating its topics; a second
recommender on a taken gRPC port started and silently shared the port through SO_REUSEPORT)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from vitrine.stream.broker import free_port
from vitrine.stream.kafka import KafkaSettings, make_admin

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port with a listening socket (what the other process holds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitrine.cli.main", *args], capture_output=True, text=True, timeout=180
    )


def _assert_clear_failure(result: subprocess.CompletedProcess[str], *wanted: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in wanted:
        assert text in result.stderr, result.stderr[-2000:]


def test_an_encoder_on_a_taken_metrics_port_stops_before_creating_its_topics(
    kafka_settings: KafkaSettings, model_dir: Path, taken_port: int, unique_name
) -> None:
    products = unique_name("ports.products")
    result = _run_encoder(kafka_settings, model_dir, taken_port, products, unique_name)
    _assert_clear_failure(result, f"0.0.0.0:{taken_port}", "in use", "VITRINE_ENCODER_METRICS_PORT")
    admin = make_admin(kafka_settings)
    try:
        assert products not in admin.list_topics(), "the encoder created its topics before failing"
    finally:
        admin.close()


def _run_encoder(
    kafka_settings: KafkaSettings, model_dir: Path, metrics_port: int, products: str, unique_name
) -> subprocess.CompletedProcess[str]:
    config = model_dir.parent / f"{products}.yaml"
    config.write_text(f"encoder:\n  products_topic: {products}\n")
    return _run(
        "encoder",
        "--config",
        str(config),
        "--model",
        str(model_dir),
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--metrics-port",
        str(metrics_port),
        "--group-id",
        unique_name("ports-group"),
    )


def test_a_recommender_on_a_taken_metrics_port_says_which_setting_to_change(
    kafka_settings: KafkaSettings, model_dir: Path, taken_port: int, tmp_path: Path
) -> None:
    result = _run(
        "recommender",
        "--model",
        str(model_dir),
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--metrics-port",
        str(taken_port),
        "--grpc-port",
        "0",
        "--index-path",
        str(tmp_path / "index"),
    )
    _assert_clear_failure(result, "in use", "VITRINE_RECOMMENDER_METRICS_PORT")


def test_a_recommender_on_a_taken_grpc_port_fails_instead_of_sharing_it(
    kafka_settings: KafkaSettings, model_dir: Path, tmp_path: Path
) -> None:
    # the other process is a gRPC server (SO_REUSEPORT on, gRPC's default): a second gRPC server
    # would have bound the same port beside it
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        result = _run(
            "recommender",
            "--model",
            str(model_dir),
            "--bootstrap-servers",
            kafka_settings.bootstrap_servers,
            "--metrics-port",
            str(free_port()),
            "--grpc-port",
            str(port),
            "--index-path",
            str(tmp_path / "index"),
        )
    finally:
        other.stop(0)
    _assert_clear_failure(result, f"127.0.0.1:{port}", "VITRINE_RECOMMENDER_GRPC_PORT")
