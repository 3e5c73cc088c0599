"""The feedback topics and their configuration, created idempotently (`vitrine.stream.topics`)."""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient

from vitrine.errors import ConfigError
from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.stream.kafka import KafkaSettings, make_admin
from vitrine.stream.topics import COMPACTED, TopicSpec, ensure_topics

DAY_MS = 24 * 3600 * 1000


def interaction_topics(
    topics: FeedbackTopics, partitions: int = 2, replication_factor: int = 1, retention_days: int = 90
) -> list[TopicSpec]:
    """catalog.interactions keeps `retention_days` of the log (the training signal is mined from it);
    its dead letters two weeks. The feedback state and results topics are separate (`state_topics`)."""
    return [
        TopicSpec(
            topics.interactions,
            partitions,
            replication_factor,
            {"cleanup.policy": "delete", "retention.ms": str(retention_days * DAY_MS)},
        ),
        TopicSpec(
            topics.dead_letters,
            1,
            replication_factor,
            {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
        ),
    ]


def state_topics(topics: FeedbackTopics, partitions: int, replication_factor: int = 1) -> list[TopicSpec]:
    """The changelog has one partition per partition of the interactions topic (partition p holds
    the state of interactions partition p) and is compacted; the results keep their history (the
    plots over time) for 400 days in one partition."""
    return [
        TopicSpec(topics.changelog, partitions, replication_factor, COMPACTED),
        TopicSpec(
            topics.results,
            1,
            replication_factor,
            {"cleanup.policy": "delete", "retention.ms": str(400 * DAY_MS)},
        ),
    ]


def partition_count(admin: KafkaAdminClient, topic: str, timeout_s: float = 30.0) -> int:
    """The topic's partition count (a topic created a moment ago can describe as empty: wait for it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_topics([topic])
        count = len(described[0]["partitions"]) if described else 0
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def ensure_feedback_topics(settings: KafkaSettings, topics: FeedbackTopics, partitions: int = 2) -> int:
    """Create what is missing; returns the interactions topic's partition count. A changelog with
    another partition count than the interactions topic is an error (its partitions map one to one)."""
    admin = make_admin(settings)
    try:
        ensure_topics(admin, interaction_topics(topics, partitions))
        count = partition_count(admin, topics.interactions)
        ensure_topics(admin, state_topics(topics, count))
        state = partition_count(admin, topics.changelog)
        if state != count:
            raise ConfigError(
                f"{topics.changelog} has {state} partitions but {topics.interactions} has {count}: the "
                "state changelog needs one partition per interactions partition"
            )
        return count
    finally:
        admin.close()
