"""Topic administration, the publisher, the vector sink and dead letters against a real Kafka broker."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.catalog.validation import decode_event
from vitrine.index.port import Change, IndexedItem, ItemPayload, Tombstone
from vitrine.stream.dead_letters import H_OFFSET, H_REASON, H_TOPIC, KafkaDeadLetters
from vitrine.stream.kafka import KafkaSettings, TopicNames, make_admin, make_consumer, make_producer
from vitrine.stream.publisher import CatalogPublisher, VersionClock
from vitrine.stream.records import SourceRecord
from vitrine.stream.sinks import KafkaVectorSink
from vitrine.stream.topics import catalog_topics, ensure_topics

pytestmark = pytest.mark.integration


def _read_all(settings: KafkaSettings, topic: str, expected: int, timeout_ms: int = 15000) -> list:
    consumer = make_consumer(settings, topic, consumer_timeout_ms=timeout_ms, group_id=None)
    out = []
    for record in consumer:
        out.append(record)
        if len(out) >= expected:
            break
    consumer.close()
    return out


def test_catalog_topics_are_created_idempotently_with_compaction(
    kafka_settings: KafkaSettings, unique_name
) -> None:
    base = unique_name("admin")
    names = TopicNames(f"{base}.products", f"{base}.vectors", f"{base}.dlq")
    admin = make_admin(kafka_settings)
    try:
        first = ensure_topics(admin, catalog_topics(names, partitions=3))
        second = ensure_topics(admin, catalog_topics(names, partitions=3))
        assert sorted(first) == sorted([names.products, names.vectors, names.dead_letters])
        assert second == []
        described = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, names.products),
                ConfigResource(ConfigResourceType.TOPIC, names.dead_letters),
            ]
        )["topic"]
        assert described[names.products]["cleanup.policy"]["value"] == "compact"
        assert described[names.dead_letters]["cleanup.policy"]["value"] == "delete"
        partitions = admin.describe_topics([names.products])[0]["partitions"]
        assert len(partitions) == 3
    finally:
        admin.close()


def test_publisher_keys_by_product_id_and_confirms_delivery(
    kafka_settings: KafkaSettings, catalog_topics
) -> None:
    products = [Product(f"sku-{i}", f"Product {i}") for i in range(20)]
    with CatalogPublisher.connect(kafka_settings, catalog_topics.products) as publisher:
        versions = [publisher.upsert(p) for p in products]
        publisher.delete("sku-3")
        report = publisher.flush()
    assert report.sent == 21 and report.acknowledged == 21 and not report.failed
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    records = _read_all(kafka_settings, catalog_topics.products, 21)
    assert len(records) == 21
    for r in records:
        event = decode_event(r.value, r.key)
        assert r.key == event.product_id.encode()
    assert sum(decode_event(r.value).is_delete for r in records) == 1


def test_version_clock_is_strictly_increasing() -> None:
    clock = VersionClock()
    values = [clock.next() for _ in range(10_000)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_dead_letters_keep_the_original_bytes_and_say_why(
    kafka_settings: KafkaSettings, catalog_topics
) -> None:
    producer = make_producer(kafka_settings)
    dlq = KafkaDeadLetters(producer, catalog_topics.dead_letters)
    record = SourceRecord(
        catalog_topics.products, 1, 42, b"sku-9", b"\x00garbage", 1700000000000, (("trace", b"t1"),)
    )
    dlq.send(record, "undecodable", "not a ProductEvent")
    dlq.flush()
    producer.close()
    [letter] = _read_all(kafka_settings, catalog_topics.dead_letters, 1)
    headers = dict(letter.headers)
    assert letter.value == b"\x00garbage" and letter.key == b"sku-9"
    assert headers[H_REASON] == b"undecodable"
    assert headers[H_TOPIC] == catalog_topics.products.encode() and headers[H_OFFSET] == b"42"
    assert headers["trace"] == b"t1"


def test_vector_sink_never_writes_stale_versions_and_restores_them(
    kafka_settings: KafkaSettings, catalog_topics
) -> None:
    now = datetime.now(UTC)
    vec = np.ones(4, dtype=np.float32) / 2

    def change(pid: str, version: int, delete: bool = False) -> Change:
        if delete:
            return Tombstone(pid, version, now)
        return IndexedItem(pid, version, vec, ItemPayload(title=f"{pid}@{version}"), now)

    sink = KafkaVectorSink(make_producer(kafka_settings), catalog_topics.vectors, model_version="m1")
    first = sink.apply([change("a", 2), change("b", 1)])
    assert (first.written, first.stale) == (2, 0)
    second = sink.apply([change("a", 1), change("b", 1), change("b", 3, delete=True)])
    assert (second.written, second.deleted, second.stale) == (0, 1, 2)
    sink.close()

    restored = KafkaVectorSink(make_producer(kafka_settings), catalog_topics.vectors, model_version="m1")
    consumer = make_consumer(kafka_settings)
    assert restored.restore(consumer) == 3
    consumer.close()
    assert restored.versions(["a", "b", "c"]) == {"a": 2, "b": 3}
    assert restored.apply([change("a", 2)]).stale == 1
    restored.close()


def test_product_events_survive_the_wire_unchanged(kafka_settings: KafkaSettings, catalog_topics) -> None:
    event = ProductEvent.upsert(
        Product("sku-x", "Title", price=9.99, currency="EUR"), 5, datetime(2026, 1, 1, tzinfo=UTC)
    )
    with CatalogPublisher.connect(kafka_settings, catalog_topics.products) as publisher:
        publisher.publish(event)
    [record] = _read_all(kafka_settings, catalog_topics.products, 1)
    assert decode_event(record.value, record.key) == event


def test_vector_sink_catches_up_with_other_writers_on_assignment(
    kafka_settings: KafkaSettings, catalog_topics
) -> None:
    """After a rebalance an encoder must know what the previous owner wrote, or an out-of-order
    event could be written after a newer vector and win compaction."""
    now = datetime.now(UTC)
    vec = np.ones(4, dtype=np.float32) / 2

    def item(pid: str, version: int) -> Change:
        return IndexedItem(pid, version, vec, ItemPayload(title=pid), now)

    previous_owner = KafkaVectorSink(
        make_producer(kafka_settings), catalog_topics.vectors, model_version="m1"
    )
    successor = KafkaVectorSink(
        make_producer(kafka_settings),
        catalog_topics.vectors,
        make_consumer(kafka_settings),
        model_version="m1",
    )
    previous_owner.apply([item("x", 3)])
    successor.restore()
    previous_owner.apply([item("x", 5)])  # written after the successor's restore
    assert successor.versions(["x"]) == {"x": 3}
    successor.catch_up()
    assert successor.versions(["x"]) == {"x": 5}
    assert successor.apply([item("x", 4)]).stale == 1  # the out-of-order event is not written
    previous_owner.close()
    successor.close()


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "in a transaction"])
def test_append_records_delivers_like_send(
    kafka_settings: KafkaSettings, catalog_topics, unique_name, transactional: bool
) -> None:
    """The vector sink's bulk path (kafka_compat.append_records): every record arrives once, in
    order, in the partition asked for, with its key and value, and its future resolves to where it
    was written; in a transaction nothing is visible before the commit."""
    from kafka.structs import TopicPartition

    from vitrine.stream.kafka_compat import append_records

    topic = catalog_topics.vectors
    extra = {"transactional_id": unique_name("compat-txn")} if transactional else {}
    producer = make_producer(kafka_settings, linger_ms=1000, **extra)
    if transactional:
        producer.init_transactions()
        producer.begin_transaction()
    assert producer.partitions_for(topic) == {0, 1}
    records = {
        p: [(f"k{p}-{i}".encode(), f"value {p} {i}".encode() * (i % 7 + 1)) for i in range(700)]
        for p in (0, 1)
    }
    futures = {p: append_records(producer, topic, p, recs) for p, recs in records.items()}
    producer.flush()
    for p, fs in futures.items():
        offsets = [f.get(timeout=30).offset for f in fs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert {f.get(timeout=30).partition for f in fs} == {p}
    if transactional:
        reader = make_consumer(kafka_settings, group_id=None)  # read_committed
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        reader.assign(tps)
        assert reader.poll(timeout_ms=1000) == {}  # not visible before the commit
        reader.close()
        producer.commit_transaction()
    producer.close()
    got = _read_all(kafka_settings, topic, expected=1400)
    for p in (0, 1):
        assert [(r.key, r.value) for r in got if r.partition == p] == records[p]
