"""The encoder's consume → validate → encode → write → commit loop, in-process, against a real broker
and the real exported model."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.model.serving import load_serving_model
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import H_REASON, KafkaDeadLetters
from vitrine.stream.encoding import EncoderPipeline
from vitrine.stream.kafka import KafkaSettings, TopicNames, group_progress, make_consumer, make_producer
from vitrine.stream.records import decode_vector_change
from vitrine.stream.sinks import KafkaVectorSink
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


@pytest.fixture
def running_encoder(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, model_dir: Path, unique_name
) -> Iterator[tuple[str, EncoderMetrics]]:
    model = load_serving_model(model_dir)
    producer = make_producer(kafka_settings)
    metrics = EncoderMetrics()
    pipeline = EncoderPipeline(
        model,
        KafkaVectorSink(producer, catalog_topics.vectors),
        KafkaDeadLetters(producer, catalog_topics.dead_letters),
        metrics,
    )
    group_id = unique_name("encoder")
    consumer = make_consumer(kafka_settings, group_id=group_id)
    worker = EncoderWorker(consumer, catalog_topics.products, pipeline, BatchPolicy(128, 20), metrics)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield group_id, metrics
    worker.stop()
    thread.join(30)
    assert not thread.is_alive(), "the encoder did not stop on request"


def test_malformed_events_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    _, metrics = running_encoder
    rng = random.Random(5)
    producer = make_producer(kafka_settings)
    expected_reasons: Counter[str] = Counter()
    valid_ids = set()
    for i in range(2000):
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

    deadline = time.monotonic() + 120
    while metrics.consumed._value.get() < 2000 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metrics.consumed._value.get() == 2000

    vectors = read_topic(kafka_settings, catalog_topics.vectors)
    indexed = {decode_vector_change(r.value).product_id for r in vectors}
    assert indexed == valid_ids
    letters = read_topic(kafka_settings, catalog_topics.dead_letters)
    reasons = Counter(dict(r.headers)[H_REASON].decode() for r in letters)
    assert reasons == expected_reasons
    for reason, n in expected_reasons.items():
        assert metrics.dead_lettered.labels(reason)._value.get() == n


def test_duplicates_and_stale_events_are_dropped_before_encoding(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    _, metrics = running_encoder
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
    for e in events:
        producer.send(catalog_topics.products, key=e.product_id.encode(), value=e.to_bytes())
        producer.flush()  # one by one, so they land in separate batches as in real life
        time.sleep(0.1)
    deadline = time.monotonic() + 60
    while metrics.consumed._value.get() < len(events) and time.monotonic() < deadline:
        time.sleep(0.1)
    changes = [decode_vector_change(r.value) for r in read_topic(kafka_settings, catalog_topics.vectors)]
    assert [(c.product_id, c.version, type(c.change).__name__) for c in changes] == [
        ("a", 2, "IndexedItem"),
        ("b", 1, "IndexedItem"),
        ("b", 2, "Tombstone"),
    ]
    assert metrics.stale._value.get() == 3


def test_offsets_are_committed_once_the_batch_is_written(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, running_encoder
) -> None:
    group_id, _ = running_encoder
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
    # everything committed is in the vectors topic
    written = {
        decode_vector_change(r.value).product_id for r in read_topic(kafka_settings, catalog_topics.vectors)
    }
    assert written == {f"c-{i}" for i in range(50)}
