"""No single record stops a partition (issue 14's probes, against a real broker and the real model).

Each test publishes one poison record between two valid events on one partition and checks, with a
bound, that the poison is dead-lettered with its reason, that the valid event after it is indexed and
that the worker is still running. The defects they name (found on the commit before this test
existed, a02873d, and shown there by running this file as a control: docs/RELIABILITY.md):

- a gzip-compressed 3 MB invalid event: accepted by the broker, but its dead letter (sent
  uncompressed) was refused with MessageSizeTooLargeError and retried forever: the partition stopped;
- an invalid event with a null-valued header: the dead-letter send raised TypeError, which escaped
  the worker: the process exited, replayed the event at restart and crash-looped;
- a version at or above 2**63: passed validation and broke the Qdrant payload, retried forever;
- one undecodable record on the vectors topic stopped every recommender replica's feed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.structs import TopicPartition

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics, RecommenderMetrics
from vitrine.stream.dead_letters import H_OFFSET, H_REASON, KafkaDeadLetters
from vitrine.stream.kafka import KafkaSettings, TopicNames, make_consumer, make_producer
from vitrine.stream.pipeline import EncoderPipeline
from vitrine.stream.records import SourceRecord, decode_vector_change, encode_vector_change
from vitrine.stream.sinks import KafkaVectorSink, VectorSink
from vitrine.stream.transactions import TransactionalProducer, make_transactional_producer
from vitrine.stream.vector_feed import VectorFeed
from vitrine.stream.worker import BatchPolicy, EncoderWorker

pytestmark = pytest.mark.integration

BOUND_S = 60  # the next valid event must be indexed within this, whatever came before it
# the dead-letter envelope's headers, as docs/EVENTS.md names them
H_ENVELOPE = "vitrine.dlq.envelope"
H_VALUE_BYTES = "vitrine.dlq.original.value_bytes"
H_HEADERS = "vitrine.dlq.original.headers"


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.1)


def read_topic(settings: KafkaSettings, topic: str, idle_ms: int = 2000) -> list:
    consumer = make_consumer(settings, topic, consumer_timeout_ms=idle_ms)
    records = list(consumer)
    consumer.close()
    return records


@dataclass
class Encoder:
    thread: threading.Thread
    metrics: EncoderMetrics
    indexed: Callable[[], dict[str, int]]


@pytest.fixture(params=["kafka-transactions", "kafka", "qdrant"])
def encoder(
    request: pytest.FixtureRequest,
    kafka_settings: KafkaSettings,
    catalog_topics: TopicNames,
    model_dir: Path,
    unique_name: Callable[[str], str],
) -> Iterator[Encoder]:
    """The encoder's pipeline and worker on a thread, with either sink, as the service wires them."""
    model = load_inference_model(model_dir)
    metrics = EncoderMetrics()
    transactions = None
    producer: KafkaProducer | TransactionalProducer
    if request.param == "kafka-transactions":
        transactions = make_transactional_producer(kafka_settings, unique_name("poison-txn"))
        transactions.start()
        producer = transactions
    else:
        producer = make_producer(kafka_settings)
    sink: VectorSink
    if request.param.startswith("kafka"):
        sink = KafkaVectorSink(producer, catalog_topics.vectors, model_version=model.model_version)

        def indexed() -> dict[str, int]:
            return {
                (c := decode_vector_change(r.value)).product_id: c.version
                for r in read_topic(kafka_settings, catalog_topics.vectors)
            }
    else:
        index = QdrantServerIndex(QdrantServerConfig(":memory:", "items", model.dim))
        sink = index

        def indexed() -> dict[str, int]:
            return index.versions([*(f"ok-{i}" for i in range(4)), "big", "nul", "huge"])

    dead_letters = KafkaDeadLetters(
        producer, catalog_topics.dead_letters, envelopes=metrics.dead_letter_envelopes
    )
    pipeline = EncoderPipeline(model, sink, dead_letters, metrics)
    consumer = make_consumer(kafka_settings, group_id=unique_name("poison"))
    worker = EncoderWorker(
        consumer,
        catalog_topics.products,
        pipeline,
        BatchPolicy(64, 20, retry_backoff_ms=100, max_retry_backoff_ms=1000),
        metrics,
        transactions=transactions,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield Encoder(thread, metrics, indexed)
    worker.stop()
    thread.join(30)


def valid(product_id: str, version: int = 1) -> tuple[bytes, bytes]:
    event = ProductEvent.upsert(
        Product(product_id, f"Product {product_id}", price=1.0, currency="EUR"), version
    )
    return product_id.encode(), event.to_bytes()


def publish_around(settings: KafkaSettings, topic: str, poison: Callable[[KafkaProducer], None]) -> None:
    """ok-0, ok-1, the poison, ok-2, ok-3, all on partition 0 (so the poison is in their way)."""
    producer = make_producer(settings, max_request_size=8 * 1024 * 1024, compression_type="gzip")
    for i in (0, 1):
        producer.send(topic, *reversed(valid(f"ok-{i}")), partition=0)  # type: ignore[misc]
    producer.flush()
    poison(producer)
    for i in (2, 3):
        producer.send(topic, *reversed(valid(f"ok-{i}")), partition=0)  # type: ignore[misc]
    producer.flush()
    producer.close()


def assert_stream_went_on(encoder: Encoder, settings: KafkaSettings, dlq: str, reason: str) -> list:
    wait_for(
        lambda: set(encoder.indexed()) >= {f"ok-{i}" for i in range(4)},
        BOUND_S,
        "the events after the poison",
    )
    assert encoder.thread.is_alive(), "the worker died on the poison record"
    letters = [r for r in read_topic(settings, dlq) if dict(r.headers).get(H_REASON) == reason.encode()]
    assert len(letters) == 1, [dict(r.headers).get(H_REASON) for r in read_topic(settings, dlq)]
    return letters


def test_a_3_mb_gzip_invalid_event_is_dead_lettered_as_an_envelope_and_the_partition_goes_on(
    encoder: Encoder, kafka_settings: KafkaSettings, catalog_topics: TopicNames
) -> None:
    big = b"\x08\x07" + b"x" * (3 * 1024 * 1024)  # schema_version 7, then 3 MB; gzip makes it ~3 KB

    def poison(producer: KafkaProducer) -> None:
        producer.send(catalog_topics.products, key=b"big", value=big, partition=0)
        producer.flush()

    publish_around(kafka_settings, catalog_topics.products, poison)
    [letter] = assert_stream_went_on(
        encoder, kafka_settings, catalog_topics.dead_letters, "unknown_schema_version"
    )
    headers = dict(letter.headers)
    assert headers[H_ENVELOPE] == b"too_large"
    assert headers[H_VALUE_BYTES] == str(len(big)).encode() and headers[H_OFFSET] == b"2"
    assert big.startswith(letter.value) and 0 < len(letter.value) <= 64 * 1024
    assert encoder.metrics.dead_letter_envelopes.labels("too_large")._value.get() == 1


@pytest.mark.parametrize("transactional", [True, False])
def test_an_invalid_event_with_a_null_header_is_dead_lettered_and_the_pipeline_goes_on(
    transactional: bool,
    kafka_settings: KafkaSettings,
    catalog_topics: TopicNames,
    model_dir: Path,
    unique_name: Callable[[str], str],
) -> None:
    # kafka-python's producer cannot send a null header value, but the protocol, the Java client and
    # librdkafka can, and kafka-python's consumer hands it over as None: the record as consumed
    model = load_inference_model(model_dir)
    producer: KafkaProducer | TransactionalProducer
    if transactional:
        producer = make_transactional_producer(kafka_settings, unique_name("poison-txn"))
        producer.start()
        producer.begin()
    else:
        producer = make_producer(kafka_settings)
    sink = KafkaVectorSink(producer, catalog_topics.vectors, model_version=model.model_version)
    pipeline = EncoderPipeline(model, sink, KafkaDeadLetters(producer, catalog_topics.dead_letters))
    headers = (("trace", b"t-1"), ("nothing", None))
    poison = SourceRecord(catalog_topics.products, 0, 7, b"nul", b"\xff not a ProductEvent", 0, headers)  # type: ignore[arg-type]
    key, value = valid("ok-0")
    after = SourceRecord(catalog_topics.products, 0, 8, key, value, 0, ())
    outcome = pipeline.process([poison, after])
    if isinstance(producer, TransactionalProducer):
        producer._current().commit_transaction()
        producer.in_transaction = False
    assert outcome.dead_lettered == {"undecodable": 1} and outcome.written == 1
    [letter] = read_topic(kafka_settings, catalog_topics.dead_letters)
    got = dict(letter.headers)
    assert got[H_ENVELOPE] == b"unencodable_headers" and got[H_REASON] == b"undecodable"
    assert letter.value == b"\xff not a ProductEvent" and letter.key == b"nul"
    assert b'["nothing", null]' in got[H_HEADERS]


def test_a_version_at_or_above_2_63_is_dead_lettered_before_any_sink_sees_it(
    encoder: Encoder, kafka_settings: KafkaSettings, catalog_topics: TopicNames
) -> None:
    def poison(producer: KafkaProducer) -> None:
        producer.send(catalog_topics.products, *reversed(valid("huge", 2**63)), partition=0)  # type: ignore[misc]
        producer.flush()

    publish_around(kafka_settings, catalog_topics.products, poison)
    assert_stream_went_on(encoder, kafka_settings, catalog_topics.dead_letters, "bad_version")
    assert "huge" not in encoder.indexed()


def test_one_undecodable_record_on_the_vectors_topic_does_not_stop_a_replica_feed(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, tmp_path: Path, model_dir: Path
) -> None:
    model = load_inference_model(model_dir)
    index = EdgeIndex(EdgeIndexConfig(tmp_path / "shard", model.dim, fresh=True, wal=False))
    metrics = RecommenderMetrics()
    feed = VectorFeed(
        make_consumer(kafka_settings), catalog_topics.vectors, index, metrics, model.model_version
    )
    feed.start()
    try:
        assert feed.wait_caught_up(60)
        producer = make_producer(kafka_settings)
        vectors = model.encode_items([Product(f"v-{i}", f"Vector {i}") for i in range(3)])
        from vitrine.index.port import IndexedItem, ItemPayload

        def item(i: int) -> bytes:
            change = IndexedItem(f"v-{i}", 1, vectors[i], ItemPayload(title=f"Vector {i}"))
            return encode_vector_change(change, model.model_version)

        wrong_dim = IndexedItem("v-wrong", 1, vectors[2][:3], ItemPayload(title="short"))
        for key, value in (
            (b"v-0", item(0)),
            (b"junk", b"\xff\xfe not an ItemVector"),
            (b"v-wrong", encode_vector_change(wrong_dim, model.model_version)),
            (b"v-1", item(1)),
        ):
            producer.send(catalog_topics.vectors, key=key, value=value, partition=0)
        producer.flush()
        wait_for(lambda: len(index.get(["v-0", "v-1"])) == 2, BOUND_S, "the vectors after the bad records")
        assert feed.error is None and feed._thread is not None and feed._thread.is_alive()
        assert metrics.feed_rejected.labels("undecodable")._value.get() == 1
        assert metrics.feed_rejected.labels("bad_vector")._value.get() == 1
        assert index.get(["v-wrong"]) == {}
        end = make_consumer(kafka_settings).end_offsets([TopicPartition(catalog_topics.vectors, 0)])
        assert list(end.values()) == [4]
    finally:
        feed.stop()
        index.close()
