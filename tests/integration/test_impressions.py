"""Attribution from the serving path: every response carries a recommendation id, and the recommender
records one impression per returned list on the interactions topic (a real gRPC server, a real Edge
index, a real broker), without ever blocking a request (a broker that is down costs nothing but the
counted, dropped impressions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.structs import TopicPartition

from vitrine.api.client import RecommenderClient, Similar
from vitrine.api.server import create_grpc_server
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.feedback.interactions import InteractionType, decode_interaction
from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.feedback.recorder import ImpressionRecorder
from vitrine.feedback.topics import ensure_feedback_topics
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import ImpressionMetrics, RecommenderMetrics
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.serving.results import Task
from vitrine.stream.broker import free_port
from vitrine.stream.kafka import KafkaSettings, make_consumer
from vitrine.stream.pipeline import encode_products

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def snapshot(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingSnapshot]:
    products = list(generate(SyntheticConfig(n_products=300, seed=3, n_sessions=10, n_baskets=10)).products)
    model = load_inference_model(model_dir)
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("impressions") / "edge", model.dim))
    index.apply(encode_products(model, products))
    served = ServedModel("sim", model.model_version, model.task, index, model)
    router = ExperimentRouter([Variant("a", similar="sim"), Variant("b", similar="sim")], salt="exp-7")
    yield ServingSnapshot({"sim": served}, router)
    index.close()


def serve(snapshot: ServingSnapshot, recorder: ImpressionRecorder | None) -> tuple[object, str]:
    server = create_grpc_server(ModelRegistry(snapshot), RecommenderMetrics(), impressions=recorder)
    server.start()
    server.set_serving(True)
    return server, f"127.0.0.1:{server.port}"


def test_every_list_gets_a_recommendation_id_and_one_impression_with_what_was_shown(
    snapshot: ServingSnapshot, kafka_settings: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("interactions")
    ensure_feedback_topics(
        kafka_settings, FeedbackTopics(topic, f"{topic}.dlq", f"{topic}-state", f"{topic}.exp"), 1
    )
    metrics = ImpressionMetrics()
    recorder = ImpressionRecorder(kafka_settings, topic, metrics).start()
    server, target = serve(snapshot, recorder)
    try:
        with RecommenderClient(target, timeout_s=10, retries=0) as client:
            responses = [
                client.similar("p000010", limit=5, unit_key=f"u{i}", placement="pdp-similar")
                for i in range(6)
            ]
            responses.append(client.similar("p000011", limit=4))  # no unit key: control, key = its id
            page = client.batch(
                [Similar("p000012", limit=3), Similar("p000013", limit=3, placement="cart")], unit_key="u9"
            )
        responses += [r for r in page if not isinstance(r, Exception)]  # type: ignore[misc]
        ids = [r.recommendation_id for r in responses]  # type: ignore[union-attr]
        assert all(len(i) == 32 for i in ids) and len(set(ids)) == len(ids) == 9
        recorder.flush()
        consumer = make_consumer(kafka_settings, group_id=None)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records, deadline = [], time.monotonic() + 30
        while len(records) < len(ids) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        consumer.close()
        assert len(records) == len(ids)
        by_id = {}
        for r in records:
            e = decode_interaction(r.value, r.key)  # the recorder writes the contract it documents
            by_id[e.recommendation_id] = e
        model_version = snapshot.models["sim"].model_version
        for i, response in enumerate(responses):
            e = by_id[response.recommendation_id]  # type: ignore[union-attr]
            assert e.type is InteractionType.IMPRESSION and e.event_id == e.recommendation_id
            assert e.shown is not None and list(e.shown.product_ids) == response.ids  # type: ignore[union-attr]
            assert (e.shown.experiment, e.shown.control_variant, e.shown.model_version) == (
                "exp-7",
                "a",
                model_version,
            )
            assert e.shown.variant == response.variant and e.shown.task is Task.SIMILAR  # type: ignore[union-attr]
            expected_placement = {6: "similar", 7: "similar", 8: "cart"}.get(i, "pdp-similar")
            assert e.placement == expected_placement
        assert by_id[responses[6].recommendation_id].unit_key == ""  # type: ignore[union-attr]
        assert records[0].key is not None
        assert metrics.recorded._value.get() == len(ids)
    finally:
        server.stop(0)  # type: ignore[attr-defined]
        recorder.close()


def test_a_broker_that_is_down_never_blocks_a_request_and_every_lost_impression_is_counted(
    snapshot: ServingSnapshot,
) -> None:
    down = KafkaSettings(f"127.0.0.1:{free_port()}")  # nothing listens there
    metrics = ImpressionMetrics()
    recorder = ImpressionRecorder(down, "catalog.interactions", metrics, capacity=20).start()
    server, target = serve(snapshot, recorder)
    try:
        with RecommenderClient(target, timeout_s=10, retries=0) as client:
            for i in range(100):
                assert client.similar("p000010", limit=5, unit_key=f"u{i}").ids
    finally:
        server.stop(0)  # type: ignore[attr-defined]
        recorder.close(timeout_s=10)
    # every list is accounted for: dropped at the full buffer or counted as not sent, none recorded
    full = metrics.dropped.labels("buffer_full")._value.get()
    failed = metrics.dropped.labels("send_failed")._value.get()
    assert metrics.recorded._value.get() == 0
    assert full + failed == 100, (full, failed)
