"""The encoder's consume → validate → encode → write → commit loop, in-process, against a real broker
and the real exported model."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.index.port import Tombstone
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import H_REASON, KafkaDeadLetters
from vitrine.stream.kafka import KafkaSettings, TopicNames, group_progress, make_consumer, make_producer
from vitrine.stream.pipeline import EncoderPipeline
from vitrine.stream.records import decode_vector_change
from vitrine.stream.sinks import KafkaVectorSink, VectorSink
from vitrine.stream.transactions import TransactionalProducer, make_transactional_producer
from vitrine.stream.worker import BatchPolicy, EncoderWorker

pytestmark = pytest.mark.integration


def read_topic(settings: KafkaSettings, topic: str, idle_ms: int = 3000) -> list:
    consumer = make_consumer(settings, topic, consumer_timeout_ms=idle_ms)
    records = list(consumer)
    consumer.close()
    return records


def malformed(i: int, rng: random.Random) -> tuple[bytes, bytes | None, str]:
    """A bad record and the reason the encoder must give for it."""
    good = ProductEvent.upsert(Product(f"bad-{i}", "A title", price=1.0, currency="EUR"), 1).to_proto()
    kind = i % 5
    if kind == 0:
        return (
            f"bad-{i}".encode(),
            bytes(rng.getrandbits(8) for _ in range(40)) + b"\xff\xff\xff",
            "undecodable",
        )
    if kind == 1:
        good.upsert.price.amount = float("nan")
        return f"bad-{i}".encode(), good.SerializeToString(), "bad_price"
    if kind == 2:
        good.upsert.title = ""
        return f"bad-{i}".encode(), good.SerializeToString(), "missing_title"
    if kind == 3:
        good.schema_version = 7
        return f"bad-{i}".encode(), good.SerializeToString(), "unknown_schema_version"
    good.upsert.description = "x" * 50_000
    return f"bad-{i}".encode(), good.SerializeToString(), "oversized_text"


@dataclass
class RunningEncoder:
    group_id: str
    metrics: EncoderMetrics
    indexed: Callable[[], dict[str, int]]  # product id -> version (negative: deleted) in the sink


def kafka_state(settings: KafkaSettings, topic: str) -> dict[str, int]:
    state: dict[str, int] = {}
    for r in read_topic(settings, topic):
        change = decode_vector_change(r.value)
        state[change.product_id] = -change.version if isinstance(change.change, Tombstone) else change.version
    return state


def qdrant_state(index: QdrantServerIndex) -> dict[str, int]:
    points, _ = index.client.scroll(index.collection, limit=100_000, with_payload=True)
    return {
        p.payload["product_id"]: -p.payload["version"] if p.payload["deleted"] else p.payload["version"]
        for p in points
    }


@pytest.fixture(params=["kafka-transactions", "kafka", "qdrant"])
def running_encoder(
    request: pytest.FixtureRequest,
    kafka_settings: KafkaSettings,
    catalog_topics: TopicNames,
    model_dir: Path,
    unique_name,
) -> Iterator[RunningEncoder]:
    """The same pipeline and worker with either sink: the vectors topic (embedded mode; by default
    each batch a transaction with its dead letters and offsets, or plain writes and commits) or a
    Qdrant collection through the server adapter (qdrant-client's in-process engine)."""
    model = load_inference_model(model_dir)
    metrics = EncoderMetrics()
    producer: KafkaProducer | TransactionalProducer
    transactions = None
    if request.param == "kafka-transactions":
        transactions = make_transactional_producer(kafka_settings, unique_name("encoder-txn"))
        transactions.start()  # as the service does: init_transactions() before consuming
        producer = transactions
    else:
        producer = make_producer(kafka_settings)
    sink: VectorSink
    if request.param.startswith("kafka"):
        sink = KafkaVectorSink(producer, catalog_topics.vectors, model_version=model.model_version)
        indexed = lambda: kafka_state(kafka_settings, catalog_topics.vectors)  # noqa: E731
    else:
        index = QdrantServerIndex(QdrantServerConfig(":memory:", "items", model.dim))
        sink = index  # server mode: the encoder writes the index itself
        indexed = lambda: qdrant_state(index)  # noqa: E731
    pipeline = EncoderPipeline(model, sink, KafkaDeadLetters(producer, catalog_topics.dead_letters), metrics)
    group_id = unique_name("encoder")
    consumer = make_consumer(kafka_settings, group_id=group_id)
    worker = EncoderWorker(
        consumer, catalog_topics.products, pipeline, BatchPolicy(128, 20), metrics, transactions=transactions
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield RunningEncoder(group_id, metrics, indexed)
    worker.stop()
    thread.join(30)
    assert not thread.is_alive(), "the encoder did not stop on request"


def test_malformed_events_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    metrics = running_encoder.metrics
    rng = random.Random(5)
    producer = make_producer(kafka_settings)
    expected_reasons: Counter[str] = Counter()
    valid_ids = set()
    for i in range(10_000):
        if i % 100 == 37:  # 1 % malformed, spread through the stream
            key, value, reason = malformed(i, rng)
            expected_reasons[reason] += 1
        else:
            event = ProductEvent.upsert(
                Product(f"sku-{i}", f"Product number {i}", price=float(i), currency="EUR"), 1
            )
            key, value = event.product_id.encode(), event.to_bytes()
            valid_ids.add(event.product_id)
        producer.send(catalog_topics.products, key=key, value=value)
    producer.flush()

    deadline = time.monotonic() + 300
    while metrics.consumed._value.get() < 10_000 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metrics.consumed._value.get() == 10_000

    assert set(running_encoder.indexed()) == valid_ids
    letters = read_topic(kafka_settings, catalog_topics.dead_letters)
    reasons = Counter(dict(r.headers)[H_REASON].decode() for r in letters)
    assert reasons == expected_reasons
    for reason, n in expected_reasons.items():
        assert metrics.dead_lettered.labels(reason)._value.get() == n


def test_duplicates_and_stale_events_are_dropped_before_encoding(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    metrics = running_encoder.metrics
    producer = make_producer(kafka_settings)
    t = datetime.now(UTC)
    events = [
        ProductEvent.upsert(Product("a", "Alpha v2"), 2, t),
        ProductEvent.upsert(Product("a", "Alpha v1"), 1, t),  # older: dropped
        ProductEvent.upsert(Product("a", "Alpha v2"), 2, t),  # duplicate: dropped
        ProductEvent.upsert(Product("b", "Beta"), 1, t),
        ProductEvent.delete("b", 2, t),
        ProductEvent.upsert(Product("b", "Beta again"), 1, t),  # older than the delete: dropped
    ]
    deadline = time.monotonic() + 60
    for n, e in enumerate(events, 1):
        producer.send(catalog_topics.products, key=e.product_id.encode(), value=e.to_bytes())
        producer.flush()
        # one by one, so they land in separate batches as in real life (each waits for the previous
        # batch to be done: its transaction's first round trips take longer than a plain write)
        while metrics.consumed._value.get() < n and time.monotonic() < deadline:
            time.sleep(0.02)
    assert running_encoder.indexed() == {"a": 2, "b": -2}
    assert metrics.stale._value.get() == 3
    assert metrics.written.labels("upsert")._value.get() == 2  # a@2, b@1: the stale ones were never written


def test_offsets_are_committed_once_the_batch_is_written(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    group_id = running_encoder.group_id
    producer = make_producer(kafka_settings)
    for i in range(50):
        e = ProductEvent.upsert(Product(f"c-{i}", f"Item {i}"), 1)
        producer.send(catalog_topics.products, key=e.product_id.encode(), value=e.to_bytes())
    producer.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = group_progress(kafka_settings, group_id, catalog_topics.products)
        if all(committed == end for committed, end in progress.values()):
            break
        time.sleep(0.2)
    assert all(committed == end for committed, end in progress.values()), progress
    assert sum(end for _, end in progress.values()) == 50
    # everything committed is in the index
    assert set(running_encoder.indexed()) == {f"c-{i}" for i in range(50)}
