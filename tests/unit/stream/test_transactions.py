"""The exactly-once machinery without a broker: the transactional producer's life cycle, the sink's
staged versions, the worker's reaction to a fenced, failing or recreated transaction, and the
per-host instance slots behind the default transactional.id."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka.errors import CommitFailedError, KafkaTimeoutError, ProducerFencedError
from kafka.structs import ConsumerGroupMetadata, TopicPartition

from vitrine.index.port import Change, IndexedItem, ItemPayload
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import CONSUMER_DEFAULTS, require_read_committed
from vitrine.stream.pipeline import BatchOutcome
from vitrine.stream.records import SourceRecord
from vitrine.stream.sinks import KafkaVectorSink
from vitrine.stream.transactions import (
    TransactionalProducer,
    default_transactional_id,
    host_instance_slot,
)
from vitrine.stream.worker import BatchPolicy, EncoderWorker


class FakeFuture:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    """Records the transactional calls; `fail` maps a method name to the exception it raises once."""

    def __init__(self, calls: list[str], fail: dict[str, BaseException] | None = None) -> None:
        self.calls = calls
        self.fail = fail if fail is not None else {}
        self.sent: list[tuple[str, Any]] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail.pop(name)

    def init_transactions(self) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, offsets: dict, group: object) -> None:
        self._call("offsets")

    def commit_transaction(self) -> None:
        self._call("commit")

    def abort_transaction(self) -> None:
        self._call("abort")

    def send(self, topic: str, **kwargs: Any) -> FakeFuture:
        self.sent.append((topic, kwargs.get("key")))
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def close(self, timeout: float | None = None) -> None:
        self.calls.append("close")


def transactional(calls: list[str], fail: dict[str, BaseException] | None = None) -> TransactionalProducer:
    return TransactionalProducer(lambda: FakeProducer(calls, fail), "group-host-0")  # type: ignore[arg-type,return-value]


def item(pid: str, version: int) -> Change:
    vec = np.ones(4, dtype=np.float32) / 2
    return IndexedItem(pid, version, vec, ItemPayload(title=pid), datetime.now(UTC))


def test_a_transaction_initialises_once_then_begins_and_commits_with_the_offsets() -> None:
    calls: list[str] = []
    txn = transactional(calls)
    for _ in range(2):
        txn.begin()
        txn.commit({TopicPartition("t", 0): None}, "group")  # type: ignore[dict-item]
    assert calls == ["init", "begin", "offsets", "commit", "begin", "offsets", "commit"]
    txn.abort()  # nothing open: nothing to abort
    assert calls[-1] == "commit"


def test_the_sink_remembers_versions_only_once_their_transaction_committed() -> None:
    calls: list[str] = []
    txn = transactional(calls)
    sink = KafkaVectorSink(txn, "vectors", model_version="m1")  # type: ignore[arg-type]
    txn.begin()
    assert sink.apply([item("a", 2)]).written == 1
    assert sink.versions(["a"]) == {}  # written in a transaction that may still abort
    txn.abort()
    assert sink.versions(["a"]) == {}
    txn.begin()
    assert sink.apply([item("a", 2)]).written == 1  # the retry writes it again
    txn.commit({}, "group")
    assert sink.versions(["a"]) == {"a": 2}
    txn.begin()
    assert sink.apply([item("a", 1)]).stale == 1


def test_an_abort_voids_the_pending_dead_letters() -> None:
    calls: list[str] = []
    txn = transactional(calls)
    dlq = KafkaDeadLetters(txn, "dlq")  # type: ignore[arg-type]
    txn.begin()
    dlq.send(SourceRecord("p", 0, 1, b"k", b"v", 0, ()), "undecodable", "x")
    assert len(dlq._pending) == 1
    txn.abort()
    assert dlq._pending == [] and calls[-1] == "abort"


def test_a_fenced_producer_is_recreated_instead_of_aborted() -> None:
    calls: list[str] = []
    created: list[FakeProducer] = []

    def factory() -> FakeProducer:
        created.append(FakeProducer(calls))
        return created[-1]

    txn = TransactionalProducer(factory, "id")  # type: ignore[arg-type]
    txn.begin()
    assert txn.is_fatal(ProducerFencedError()) and not txn.is_fatal(KafkaTimeoutError())
    txn.recreate()
    assert len(created) == 2 and calls == ["init", "begin", "close", "init"]
    assert not txn.in_transaction


class FakeCoordinator:
    def __init__(self) -> None:
        self.rejoin_requested = False

    def request_rejoin(self) -> None:
        self.rejoin_requested = True


class FakeConsumer:
    def __init__(self, generation: int = 3) -> None:
        self.generation = generation
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.assigned = {TopicPartition("p", 0), TopicPartition("p", 1)}
        self._coordinator = FakeCoordinator()

    def group_metadata(self) -> ConsumerGroupMetadata:
        member = "m-1" if self.generation > 0 else ""
        return ConsumerGroupMetadata("g", self.generation, member, None, "<stable>")

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> int | None:
        return None  # no fetch yet


class FakePipeline:
    def __init__(self) -> None:
        self.metrics = EncoderMetrics()
        self.processed = 0
        self.recorded: list[BatchOutcome] = []

    def process(
        self, batch: Sequence[SourceRecord], record_metrics: bool = True, fetched_at: float | None = None
    ) -> BatchOutcome:
        self.processed += 1
        return BatchOutcome(consumed=len(batch))

    def record_metrics(self, outcome: BatchOutcome) -> None:
        self.recorded.append(outcome)


def batch() -> list[SourceRecord]:
    return [SourceRecord("p", p, o, b"k", b"v", 0, ()) for p, o in ((0, 5), (0, 6), (1, 9))]


def worker_with(consumer: FakeConsumer, txn: TransactionalProducer) -> tuple[EncoderWorker, FakePipeline]:
    pipeline = FakePipeline()
    worker = EncoderWorker(
        consumer,  # type: ignore[arg-type]
        "p",
        pipeline,  # type: ignore[arg-type]
        BatchPolicy(retry_backoff_ms=1, max_retry_backoff_ms=1),
        transactions=txn,
    )
    worker._batch_group = consumer.group_metadata()
    return worker, pipeline


def test_a_batch_commits_its_offsets_in_its_transaction_and_counts_once_committed() -> None:
    calls: list[str] = []
    worker, pipeline = worker_with(FakeConsumer(), transactional(calls))
    outcome = worker._process(batch(), 0.0)
    assert outcome is not None and outcome.consumed == 3
    assert calls == ["init", "begin", "offsets", "commit"] and pipeline.recorded == [outcome]
    assert worker._offsets(batch()) == {
        TopicPartition("p", 0): (7, "", -1),
        TopicPartition("p", 1): (10, "", -1),
    }


def test_a_zombie_aborts_rewinds_and_leaves_the_batch_to_the_new_owner() -> None:
    calls: list[str] = []
    consumer = FakeConsumer()
    txn = transactional(calls, {"offsets": CommitFailedError("UnknownMemberIdError")})
    worker, pipeline = worker_with(consumer, txn)
    outcome = worker._process(batch(), 0.0)
    assert outcome == BatchOutcome(fenced=True)  # nothing counted: not committed
    assert calls == ["init", "begin", "offsets", "abort"] and pipeline.recorded == []
    assert sorted(consumer.seeks) == [(TopicPartition("p", 0), 5), (TopicPartition("p", 1), 9)]
    assert consumer._coordinator.rejoin_requested  # rejoin before fetching more doomed batches
    assert worker.metrics.transactions_aborted.labels("group_moved_on")._value.get() == 1


def test_a_batch_fetched_without_a_generation_is_never_committed() -> None:
    # the coordinator accepts transactional offsets without a generation (older clients send none),
    # so a consumer that already forgot its membership must not commit what it fetched
    calls: list[str] = []
    consumer = FakeConsumer(generation=-1)
    worker, pipeline = worker_with(consumer, transactional(calls))
    assert worker._process(batch(), 0.0) == BatchOutcome(fenced=True)
    assert calls == [] and pipeline.processed == 0 and len(consumer.seeks) == 2


def test_abortable_errors_are_retried_and_a_fenced_producer_is_recreated() -> None:
    calls: list[str] = []
    failures: dict[str, BaseException] = {"commit": KafkaTimeoutError("broker away")}
    txn = transactional(calls, failures)
    worker, pipeline = worker_with(FakeConsumer(), txn)
    assert worker._process(batch(), 0.0) is not None
    assert calls == ["init", "begin", "offsets", "commit", "abort", "begin", "offsets", "commit"]
    calls.clear()
    failures["offsets"] = ProducerFencedError()
    assert worker._process(batch(), 0.0) is not None
    assert calls == ["begin", "offsets", "close", "init", "begin", "offsets", "commit"]
    assert worker.metrics.transactions_aborted.labels("error")._value.get() == 1
    assert worker.metrics.transactions_aborted.labels("producer_fenced")._value.get() == 1
    assert len(pipeline.recorded) == 2  # each batch counted once, retries not


def test_a_stop_during_retries_gives_up_without_committing() -> None:
    calls: list[str] = []
    txn = transactional(calls, {"commit": KafkaTimeoutError("broker away")})
    worker, pipeline = worker_with(FakeConsumer(), txn)
    worker.stop()
    assert worker._process(batch(), 0.0) is None
    assert calls[-1] == "abort" and pipeline.recorded == []


def test_readers_of_the_vectors_topic_read_committed_records_only() -> None:
    assert CONSUMER_DEFAULTS["isolation_level"] == "read_committed"

    class Consumer:
        def __init__(self, level: str) -> None:
            self.config = {"isolation_level": level}

    require_read_committed(Consumer("read_committed"), "a reader")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read_committed"):
        require_read_committed(Consumer("read_uncommitted"), "a reader")  # type: ignore[arg-type]


def test_instance_slots_are_unique_per_live_process_and_reused_after_it_exits(tmp_path: Path) -> None:
    assert host_instance_slot("vitrine-encoder", tmp_path) == "0"
    assert host_instance_slot("vitrine-encoder", tmp_path) == "1"  # a second encoder here
    assert host_instance_slot("other-group", tmp_path) == "0"
    code = (
        "import sys; from pathlib import Path; from vitrine.stream.transactions import host_instance_slot;"
        f"print(host_instance_slot('vitrine-encoder', Path({str(tmp_path)!r})))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in "ab"
    ]
    # a process that exited (even killed) released its slot: its successor gets the same one
    assert [r.stdout.strip() for r in runs] == ["2", "2"]
    assert default_transactional_id("g", "2").startswith("g-") and default_transactional_id(
        "g", "2"
    ).endswith("-2")
