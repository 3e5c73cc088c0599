"""Server mode (what deploy/k8s ships) under process-level faults: encoders as separate processes
writing a Qdrant collection through the server adapter's real client path (qdrant-client over REST),
against `tests/support/qdrant_rest.py` (qdrant-client's engine behind Qdrant's REST API, since no
Qdrant server can be installed here; "Qdrant unavailable" = that process SIGKILLed, a closed port).

The oracle is the source of truth recomputed from what was published: the collection must hold
exactly the last event of every product (deletes as tombstones), nothing missing, stale or phantom."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.oracles import History, compare, wait_for
from support.oracles import caught_up as caught_up_group
from support.reliability_report import record as report

from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.index.port import point_id
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.stack import LocalStack
from vitrine.stream.broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COLLECTION = "vitrine-test"
SUPPORT = Path(__file__).resolve().parents[1] / "support" / "qdrant_rest.py"


class QdrantProcess:
    """The REST stand-in as a process that can be killed and started again on the same port and data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, str(SUPPORT), "--path", str(self.path), "--port", str(self.port)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("PORT "), line

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def state(self, product_ids: list[str]) -> dict[str, int]:
        """product id -> version in the collection, negative for a tombstone."""
        index = QdrantServerIndex(
            QdrantServerConfig(self.url, COLLECTION, 1, prefer_grpc=False), create=False
        )
        try:
            records = index.client.retrieve(COLLECTION, [point_id(p) for p in product_ids], with_payload=True)
        finally:
            index.close()
        return {
            r.payload["product_id"]: -r.payload["version"]
            if r.payload.get("deleted")
            else r.payload["version"]
            for r in records
        }


@pytest.fixture
def stack(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalStack, QdrantProcess]]:
    monkeypatch.setenv("VITRINE_ENCODER_QDRANT_PREFER_GRPC", "false")  # the stand-in speaks REST only
    local = LocalStack(tmp_path, model_dir)
    qdrant = QdrantProcess(tmp_path / "qdrant")
    try:
        local.start_broker()
        qdrant.start()
        yield local, qdrant
    finally:
        local.stop()
        qdrant.kill()


def start_encoder(stack: LocalStack, qdrant: QdrantProcess, name: str, **options: str):  # type: ignore[no-untyped-def]
    return stack.start_encoder(
        name=name, index_mode="server", qdrant_url=qdrant.url, qdrant_collection=COLLECTION, **options
    )


def caught(stack: LocalStack) -> bool:
    return caught_up_group(stack.kafka, "vitrine-encoder", stack.topics.products)


def test_server_mode_encoder_kill_9_while_producing_loses_nothing_and_leaves_nothing_stale(
    stack: tuple[LocalStack, QdrantProcess],
) -> None:
    local, qdrant = stack
    products = list(generate(SyntheticConfig(n_products=300, seed=41)).products)
    history = History(local.kafka, local.topics.products, products, seed=41)
    history.publish_round()
    kills = int(os.environ.get("VITRINE_RELIABILITY_KILLS", "3"))
    stop = threading.Event()
    publisher = history.keep_publishing(stop, pause_s=0.1, share=0.2)
    started = time.monotonic()
    try:
        for kill in range(kills):
            encoder = start_encoder(local, qdrant, f"encoder-{kill}", max_batch="32")
            wait_for(
                lambda e=encoder, k=kill: e.metric("vitrine_encoder_events_consumed_total") >= 50 + 30 * k,
                120,
                "progress before the kill",
            )
            encoder.kill()
    finally:
        stop.set()
        publisher.join(60)
    start_encoder(local, qdrant, "encoder-final")
    recovery = wait_for(lambda: caught(local), 180, "caught up after the last restart")
    held = qdrant.state([p.product_id for p in products])
    some = next(iter(history.expected))
    assert not compare({**history.expected, "never": 1}, held).none  # the oracle can fail
    assert not compare(history.expected, {**held, some: held[some] - 1}).none
    differences = compare(history.expected, held)
    assert differences.none, str(differences)
    report(
        "server_mode_encoder_kill_9",
        "tests/reliability/test_server_mode_faults.py::test_server_mode_encoder_kill_9_while_producing_loses_nothing_and_leaves_nothing_stale",
        f"VITRINE_RELIABILITY_KILLS={kills} .venv/bin/python -m pytest -s tests/reliability/test_server_mode_faults.py -k kill_9",
        products=len(products),
        events=history.published,
        faults=f"server mode: {kills} x encoder SIGKILL while producing",
        lost=len(differences.missing),
        stale=len(differences.stale),
        phantom=len(differences.phantom),
        recovery_s=round(recovery, 1),
        run_s=round(time.monotonic() - started, 1),
        control="in-test: the oracle reports an added lost event and a stale version",
    )


def test_server_mode_zombie_and_qdrant_down_and_back_leave_nothing_stale(
    stack: tuple[LocalStack, QdrantProcess],
) -> None:
    """Two encoders; one SIGSTOPped past its session timeout while events keep coming (its partitions
    move to the other, which writes newer versions; when it resumes it completes what it had in
    flight: a zombie's late write, which the conditional write keyed on the version refuses); then
    Qdrant SIGKILLed for 8 s and started again while events keep coming (the encoders wait it out)."""
    local, qdrant = stack
    products = list(generate(SyntheticConfig(n_products=300, seed=42)).products)
    history = History(local.kafka, local.topics.products, products, seed=42)
    paused = start_encoder(local, qdrant, "paused", max_batch="16")
    other = start_encoder(local, qdrant, "other", max_batch="16")
    history.publish_round()
    stop = threading.Event()
    publisher = history.keep_publishing(stop, pause_s=0.2, share=0.2)
    try:
        wait_for(lambda: paused.metric("vitrine_encoder_events_consumed_total") > 0, 60, "both consuming")
        os.kill(paused.process.pid, signal.SIGSTOP)
        try:
            time.sleep(14)  # past session.timeout.ms (10 s): evicted, its partitions move
        finally:
            os.kill(paused.process.pid, signal.SIGCONT)
        time.sleep(3)
        qdrant.kill()  # Qdrant unavailable: a closed port
        time.sleep(8)
        qdrant.start()
        time.sleep(3)
    finally:
        stop.set()
        publisher.join(60)
    recovery = wait_for(lambda: caught(local), 180, "caught up after the zombie and the outage")
    assert paused.alive() and other.alive(), paused.log_tail() + other.log_tail()
    held = qdrant.state([p.product_id for p in products])
    differences = compare(history.expected, held)
    assert differences.none, str(differences)
    retries = sum(e.metric("vitrine_encoder_retries_total") for e in (paused, other))
    report(
        "server_mode_zombie_and_qdrant_outage",
        "tests/reliability/test_server_mode_faults.py::test_server_mode_zombie_and_qdrant_down_and_back_leave_nothing_stale",
        ".venv/bin/python -m pytest -s tests/reliability/test_server_mode_faults.py -k zombie",
        products=len(products),
        events=history.published,
        faults="server mode: 1 of 2 encoders SIGSTOP 14 s; Qdrant SIGKILL, 8 s down, restarted",
        lost=len(differences.missing),
        stale=len(differences.stale),
        phantom=len(differences.phantom),
        recovery_s=round(recovery, 1),
        retries=retries,
        control=(
            "the conditional write's control is tests/unit/index/test_index_adapters.py::"
            "test_a_late_write_of_an_older_version_never_moves_a_server_point_backwards (a plain upsert moves points back)"
        ),
    )
