"""A replica serving two models runs two vector feeds into one metrics registry: every per-model series
must carry the model, or the feeds overwrite each other's gauges and add up their counters (issue 17:
a lagging complementary feed was hidden behind the similar one's lag of 0)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.stream.kafka import KafkaSettings, make_consumer, make_producer
from vitrine.stream.records import encode_vector_change
from vitrine.stream.topics import COMPACTED, TopicSpec, ensure_topics
from vitrine.stream.vector_feed import VectorFeed

pytestmark = pytest.mark.integration

DIM = 8


def _publish(settings: KafkaSettings, topic: str, model_version: str, n: int) -> None:
    producer = make_producer(settings)
    rng = np.random.default_rng(n)
    for i in range(n):
        vector = rng.normal(size=DIM).astype(np.float32)
        item = IndexedItem(
            f"p{i}", 1, vector / np.linalg.norm(vector), ItemPayload(title=f"t{i}"), datetime.now(UTC)
        )
        producer.send(topic, key=item.product_id.encode(), value=encode_vector_change(item, model_version))
    producer.flush()
    producer.close()


def _sample(metrics: RecommenderMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_two_feeds_in_one_replica_report_separate_series_per_model(
    kafka_settings: KafkaSettings, unique_name, tmp_path: Path
) -> None:
    from vitrine.stream.kafka import make_admin

    topics = {"sim-v1": (unique_name("vectors-sim"), 30), "compl-v1": (unique_name("vectors-compl"), 12)}
    admin = make_admin(kafka_settings)
    try:
        ensure_topics(admin, [TopicSpec(topic, 2, config=COMPACTED) for topic, _ in topics.values()])
    finally:
        admin.close()
    for version, (topic, n) in topics.items():
        _publish(kafka_settings, topic, version, n)

    metrics = RecommenderMetrics()
    feeds, indexes = [], []
    try:
        for version, (topic, _) in topics.items():
            index = EdgeIndex(EdgeIndexConfig(tmp_path / version, DIM, fresh=True, wal=False))
            feed = VectorFeed(make_consumer(kafka_settings), topic, index, metrics, version)
            feed.start()
            feeds.append(feed)
            indexes.append(index)
        for feed in feeds:
            assert feed.wait_caught_up(60), "a feed did not catch up"
        time.sleep(0.3)  # one more poll loop: the lag gauges are set after each poll

        for version, (_, n) in topics.items():
            applied = _sample(
                metrics, "vitrine_recommender_vectors_applied_total", model=version, op="upsert"
            )
            assert applied == n, f"{version}: {applied} upserts counted, {n} applied"
            for partition in ("0", "1"):
                lag = _sample(metrics, "vitrine_recommender_feed_lag", model=version, partition=partition)
                assert lag == 0.0, f"{version} partition {partition}: lag {lag}"
            assert _sample(metrics, "vitrine_recommender_vectors_stale_total", model=version) == 0.0
    finally:
        for feed in feeds:
            feed.stop()
        for index in indexes:
            index.close()
