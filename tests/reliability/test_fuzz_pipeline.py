"""Property-based fuzzing of the whole encoder pipeline, not only decoding: hostile records (any
bytes, structured-but-hostile events, any key, header values that are null, huge values) go through
the encoder's worker (decode → validate → drop stale → encode → write → commit), on both sinks (the
vectors topic on a real broker, the Qdrant server adapter), and what the vectors sink wrote goes
through a replica's feed into a Qdrant Edge shard.

Oracle, per batch: nothing escapes the worker; every record is dead-lettered with a known reason or
its event reached the sink (the sink holds at least its version afterwards, unless a newer event of
the product was in the batch). At the end: the replica's feed applies every vector the sink wrote,
rejecting none."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.event_strategies import events
from support.oracles import wait_for

from vitrine.catalog.validation import REASONS, decode_event
from vitrine.errors import InvalidEventError
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics, RecommenderMetrics
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import KafkaSettings, TopicNames, make_consumer, make_producer
from vitrine.stream.pipeline import EncoderPipeline
from vitrine.stream.records import SourceRecord
from vitrine.stream.sinks import KafkaVectorSink, VectorSink
from vitrine.stream.vector_feed import VectorFeed
from vitrine.stream.worker import WRITE_FAILED, BatchPolicy, EncoderWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KNOWN = {*REASONS, "encode_failed", WRITE_FAILED}
header_value = st.one_of(st.none(), st.binary(max_size=30))
headers = st.lists(st.tuples(st.text(max_size=10), header_value), max_size=3)
value = st.one_of(events(), st.binary(max_size=200), st.just(b""), st.none())
records = st.lists(
    st.tuples(value, st.one_of(st.none(), st.binary(max_size=20)), headers), min_size=1, max_size=6
)


@pytest.fixture(scope="module", params=["kafka", "qdrant"])
def world(
    request: pytest.FixtureRequest,
    kafka_broker: object,
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EncoderWorker, Callable[[list[str]], dict[str, int]], KafkaSettings, TopicNames]]:
    from vitrine.stream.topics import ensure_catalog_topics

    kafka = KafkaSettings(kafka_broker.bootstrap_servers, client_id="fuzz")  # type: ignore[attr-defined]
    base = f"fuzz-{request.param}-{tmp_path_factory.mktemp('x').name}"
    topics = TopicNames(f"{base}.products", f"{base}.vectors", f"{base}.dlq")
    ensure_catalog_topics(kafka, topics, partitions=1)
    model = load_inference_model(model_dir)
    producer = make_producer(kafka)
    sink: VectorSink
    if request.param == "kafka":
        sink = KafkaVectorSink(producer, topics.vectors, model_version=model.model_version)
        versions: Callable[[list[str]], dict[str, int]] = sink.versions
    else:
        index = QdrantServerIndex(QdrantServerConfig(":memory:", "fuzz", model.dim))
        sink, versions = index, index.versions
    metrics = EncoderMetrics()
    pipeline = EncoderPipeline(model, sink, KafkaDeadLetters(producer, topics.dead_letters), metrics)
    consumer = make_consumer(kafka, group_id=f"{base}-group")
    from kafka.structs import TopicPartition

    consumer.assign([TopicPartition(topics.products, 0)])  # commits offsets without joining (standalone)
    worker = EncoderWorker(consumer, topics.products, pipeline, BatchPolicy(retry_backoff_ms=10), metrics)
    yield worker, versions, kafka, topics
    consumer.close()
    producer.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=records)
def test_no_record_escapes_the_worker_and_every_valid_event_reaches_the_sink(world, batch) -> None:  # type: ignore[no-untyped-def]
    worker, versions, _, topics = world
    offset = worker.metrics.consumed._value.get()
    source = [
        SourceRecord(topics.products, 0, int(offset) + i, key, value, 0, tuple(hs))  # type: ignore[arg-type]
        for i, (value, key, hs) in enumerate(batch)
    ]
    outcome = worker._process(source, fetched_at=0.0)  # the worker's own handling: retries, isolation
    assert outcome is not None
    assert set(outcome.dead_lettered) <= KNOWN, outcome.dead_lettered
    newest: dict[str, int] = {}
    for r in source:
        try:
            event = decode_event(r.value, r.key)
        except InvalidEventError:
            continue
        newest[event.product_id] = max(newest.get(event.product_id, 0), event.version)
    dead = sum(outcome.dead_lettered.values())
    assert outcome.consumed == len(source)
    held = versions(list(newest))
    written_or_dead = {p for p, v in newest.items() if held.get(p, 0) >= v}
    # a valid event is either held (at least its version) or its record was dead-lettered (write_failed)
    assert len(newest) - len(written_or_dead) <= outcome.dead_lettered.get(
        WRITE_FAILED, 0
    ) + outcome.dead_lettered.get("encode_failed", 0), (newest, held, outcome)
    assert dead <= len(source)


# the Qdrant sink is the index itself, read directly by the recommender: no feed in between
@pytest.mark.parametrize("world", ["kafka"], indirect=True)
def test_a_replica_applies_every_vector_the_fuzzed_sink_wrote(world, model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker, _, kafka, topics = world
    assert isinstance(worker.pipeline.sink, KafkaVectorSink)
    model = load_inference_model(model_dir)
    index = EdgeIndex(EdgeIndexConfig(tmp_path / "shard", model.dim, fresh=True, wal=False))
    metrics = RecommenderMetrics()
    feed = VectorFeed(make_consumer(kafka), topics.vectors, index, metrics, model.model_version)
    feed.start()
    try:
        assert feed.wait_caught_up(120)
        wait_for(lambda: feed.error is None, 1, "feed alive")
        rejected = sum(
            s.value for m in metrics.feed_rejected.collect() for s in m.samples if s.name.endswith("_total")
        )
        assert rejected == 0 and threading.active_count() > 0
    finally:
        feed.stop()
        index.close()
