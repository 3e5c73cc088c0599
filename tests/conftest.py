"""Fixtures shared by every test: where the shared data is, a real Kafka broker per session, and real
models trained briefly on the synthetic catalogue (once per session)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data next to the repository (or $VITRINE_SHARED_DATA)."""
    return Path(os.environ.get("VITRINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(
            f"this test needs the shared data set at {path} (../shared/data next to the repository, "
            "or set VITRINE_SHARED_DATA); it is missing",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[object]:
    """One real Apache Kafka broker (KRaft, from the Maven Central jars) for the whole test session."""
    from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port

    data_dir = Path(tempfile.mkdtemp(prefix="vitrine-test-kafka-"))
    broker = LocalKafkaBroker(BrokerConfig(data_dir, free_port(), free_port(), heap="512m"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def kafka_settings(kafka_broker: object) -> object:
    from vitrine.stream.kafka import KafkaSettings

    return KafkaSettings(kafka_broker.bootstrap_servers, client_id="vitrine-test")  # type: ignore[attr-defined]


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Random topic / group names, so tests sharing the broker never see each other's data."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def catalog_topics(kafka_settings: object, unique_name: Callable[[str], str]) -> object:
    from vitrine.stream.kafka import TopicNames
    from vitrine.stream.topics import ensure_catalog_topics

    base = unique_name("catalog")
    names = TopicNames(f"{base}.products", f"{base}.vectors", f"{base}.products.dlq")
    ensure_catalog_topics(kafka_settings, names, partitions=2)  # type: ignore[arg-type]
    return names


SYNTHETIC_PRODUCTS = 600


def _train_and_export(task: str) -> Path:
    """Train a `task` model briefly on the synthetic catalogue and export it to ONNX, through the same
    CLI users run (`vitrine train`, `vitrine export`)."""
    out = Path(tempfile.mkdtemp(prefix="vitrine-test-model-")) / task
    vitrine = [sys.executable, "-m", "vitrine.cli.main", "--log-level", "WARNING"]
    train = [
        *vitrine,
        "train",
        "--task",
        task,
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
    return out


@pytest.fixture(scope="session")
def model_dir() -> Iterator[Path]:
    """A similar-products model trained briefly on the synthetic catalogue and exported to ONNX.
    VITRINE_TEST_MODEL_DIR reuses an exported model instead (faster local iterations)."""
    if reuse := os.environ.get("VITRINE_TEST_MODEL_DIR"):
        yield Path(reuse)
        return
    yield _train_and_export("similar")


@pytest.fixture(scope="session")
def complementary_model_dir() -> Iterator[Path]:
    """A complementary model (query tower + complementary-category map mined from the synthetic
    baskets), trained and exported the same way. VITRINE_TEST_COMPLEMENTARY_MODEL_DIR reuses one."""
    if reuse := os.environ.get("VITRINE_TEST_COMPLEMENTARY_MODEL_DIR"):
        yield Path(reuse)
        return
    yield _train_and_export("complementary")
