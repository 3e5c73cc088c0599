"""Zombie fencing with Kafka transactions (KIP-447), in-process against the real broker.

A zombie is an encoder that stalled mid-batch past its group membership (SIGSTOP, a long GC) and
resumes after the partitions' new owner wrote newer vectors. Here the stall is injected exactly where
it hurts: after the pipeline's stale checks, just before the batch's vectors are sent. The zombie's
consumer is evicted by its max.poll.interval (3 s), the other encoder takes over and writes newer
versions, then the zombie resumes and sends its older vectors *after* them. With transactions its
offsets are refused (stale generation), it aborts, and readers with isolation_level=read_committed
never see its records; without transactions (`exactly_once=False`) its stale records are the last
ones per key, which is what compaction would keep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.structs import TopicPartition

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.index.port import Change, WriteResult
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import (
    FLUSHING_PRODUCER,
    KafkaSettings,
    TopicNames,
    group_progress,
    make_consumer,
    make_producer,
)
from vitrine.stream.pipeline import EncoderPipeline
from vitrine.stream.records import decode_vector_change
from vitrine.stream.sinks import KafkaVectorSink
from vitrine.stream.transactions import make_transactional_producer
from vitrine.stream.worker import BatchPolicy, EncoderWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_PRODUCTS = 40


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.1)


def last_versions(settings: KafkaSettings, topic: str, isolation_level: str) -> dict[str, int]:
    """Last record per product in `topic` up to its end (the last stable offset for read_committed)."""
    consumer = make_consumer(settings, group_id=None, isolation_level=isolation_level)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        last: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "reading the vectors topic took too long"
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    change = decode_vector_change(r.value)
                    last[change.product_id] = change.version
        return last
    finally:
        consumer.close()


def publish(settings: KafkaSettings, topic: str, version: int) -> None:
    producer = make_producer(settings)
    for i in range(N_PRODUCTS):
        event = ProductEvent.upsert(
            Product(f"z-{i}", f"Product {i} v{version}", price=float(i), currency="EUR"), version
        )
        producer.send(topic, key=event.product_id.encode(), value=event.to_bytes())
    producer.flush()
    producer.close()


class StallingSink:
    """Delegates to a KafkaVectorSink; the first write stalls until released (the process 'paused'
    after its stale checks, just before sending)."""

    def __init__(self, inner: KafkaVectorSink) -> None:
        self.inner = inner
        self.stalled = threading.Event()
        self.release = threading.Event()

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        return self.inner.versions(product_ids)

    def apply(self, changes: Sequence[Change], stored: Mapping[str, int] | None = None) -> WriteResult:
        if not self.stalled.is_set():
            self.stalled.set()
            self.release.wait(120)
        return self.inner.apply(changes, stored)

    def catch_up(self) -> None:
        self.inner.catch_up()

    def close(self) -> None:
        self.inner.close()


@dataclass
class InProcessEncoder:
    worker: EncoderWorker
    thread: threading.Thread
    metrics: EncoderMetrics

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the encoder did not stop"


@pytest.fixture
def start_encoder(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, model_dir: Path
) -> Iterator[Callable[..., tuple[InProcessEncoder, KafkaVectorSink]]]:
    model = load_inference_model(model_dir)
    started: list[InProcessEncoder] = []

    def start(
        group_id: str,
        transactional_id: str | None,
        wrap: Callable[[KafkaVectorSink], object] | None = None,
        **consumer_overrides: object,
    ) -> tuple[InProcessEncoder, KafkaVectorSink]:
        metrics = EncoderMetrics()
        transactions = None
        if transactional_id is not None:
            transactions = make_transactional_producer(
                kafka_settings, transactional_id, 10_000, **FLUSHING_PRODUCER
            )
            transactions.start()
            producer: object = transactions
        else:
            producer = make_producer(kafka_settings, **FLUSHING_PRODUCER)
        sink = KafkaVectorSink(
            producer,  # type: ignore[arg-type]
            catalog_topics.vectors,
            make_consumer(kafka_settings),
            model_version=model.model_version,
        )
        sink.restore()
        pipeline = EncoderPipeline(
            model,
            wrap(sink) if wrap else sink,  # type: ignore[arg-type]
            KafkaDeadLetters(producer, catalog_topics.dead_letters),  # type: ignore[arg-type]
            metrics,
        )
        consumer = make_consumer(kafka_settings, group_id=group_id, **consumer_overrides)
        worker = EncoderWorker(
            consumer,
            catalog_topics.products,
            pipeline,
            BatchPolicy(64, 20),
            metrics,
            transactions=transactions,
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        encoder = InProcessEncoder(worker, thread, metrics)
        started.append(encoder)
        return encoder, sink

    yield start
    for encoder in started:
        encoder.worker.stop()
    for encoder in started:
        encoder.thread.join(60)


@pytest.mark.parametrize("exactly_once", [True, False], ids=["transactions", "no-transactions"])
def test_a_fenced_zombie_batch_is_aborted_and_invisible_to_read_committed_readers(
    exactly_once: bool,
    kafka_settings: KafkaSettings,
    catalog_topics: TopicNames,
    start_encoder: Callable[..., tuple[InProcessEncoder, KafkaVectorSink]],
    unique_name: Callable[[str], str],
) -> None:
    group = unique_name("encoder")
    stalling: list[StallingSink] = []

    def stall(sink: KafkaVectorSink) -> StallingSink:
        stalling.append(StallingSink(sink))
        return stalling[0]

    publish(kafka_settings, catalog_topics.products, version=1)
    zombie, _ = start_encoder(
        group,
        unique_name("zombie") if exactly_once else None,
        wrap=stall,
        max_poll_interval_ms=3000,  # stalled longer than this, it is evicted from the group
    )
    wait_for(stalling[0].stalled.is_set, 60, "the zombie stalled before sending its first batch")

    successor, _ = start_encoder(group, unique_name("successor") if exactly_once else None)
    wait_for(
        lambda: all(
            c >= e for c, e in group_progress(kafka_settings, group, catalog_topics.products).values()
        ),
        90,
        "the successor took every partition over and committed version 1",
    )
    publish(kafka_settings, catalog_topics.products, version=2)
    wait_for(
        lambda: all(
            c >= e for c, e in group_progress(kafka_settings, group, catalog_topics.products).values()
        ),
        60,
        "the successor committed version 2",
    )
    committed = last_versions(kafka_settings, catalog_topics.vectors, "read_committed")
    assert set(committed.values()) == {2} and len(committed) == N_PRODUCTS

    stalling[0].release.set()  # the zombie resumes and sends its batch of version-1 vectors
    wait_for(
        lambda: (
            zombie.metrics.transactions_aborted.labels("group_moved_on")._value.get() > 0
            or zombie.metrics.batches._value.get() > 0
        ),
        60,
        "the zombie finished its stalled batch",
    )
    # the zombie's records reached the log after the successor's (read_uncommitted sees them) ...
    written = last_versions(kafka_settings, catalog_topics.vectors, "read_uncommitted")
    stale_last = sorted(p for p, v in written.items() if v != 2)
    assert stale_last, "the zombie's batch should have been sent after the successor's writes"
    last = last_versions(kafka_settings, catalog_topics.vectors, "read_committed")
    if exactly_once:
        # ... but its transaction was refused (stale generation) and aborted: committed readers, and
        # what the log cleaner keeps, have the newest version of every product
        assert zombie.metrics.transactions_aborted.labels("group_moved_on")._value.get() == 1
        assert last == {f"z-{i}": 2 for i in range(N_PRODUCTS)}
    else:
        # the defect that transactions fix: the stale records are the last ones per key
        assert {p: last[p] for p in stale_last} == {p: 1 for p in stale_last}

    # the zombie rejoins and both go on: a third version reaches the topic through whichever owns it
    publish(kafka_settings, catalog_topics.products, version=3)
    wait_for(
        lambda: all(
            c >= e for c, e in group_progress(kafka_settings, group, catalog_topics.products).values()
        ),
        90,
        "the group committed version 3",
    )
    assert zombie.thread.is_alive() and successor.thread.is_alive()
    assert last_versions(kafka_settings, catalog_topics.vectors, "read_committed") == {
        f"z-{i}": 3 for i in range(N_PRODUCTS)
    }
