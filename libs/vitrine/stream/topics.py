"""Topic administration: the catalogue topics and their configuration, created idempotently."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from vitrine.stream.kafka import KafkaSettings, TopicNames, make_admin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


COMPACTED = {
    "cleanup.policy": "compact",
    # keep tombstones long enough for every replica to see them before compaction removes them
    "delete.retention.ms": str(24 * 3600 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}


def catalog_topics(
    names: TopicNames, partitions: int = 2, replication_factor: int = 1, dlq_retention_days: int = 14
) -> list[TopicSpec]:
    """catalog.products and catalog.vectors are compacted (latest state per product id, replayable);
    the dead-letter topic keeps everything for a while so bad events can be inspected and replayed."""
    return [
        TopicSpec(names.products, partitions, replication_factor, COMPACTED),
        TopicSpec(names.vectors, partitions, replication_factor, COMPACTED),
        TopicSpec(
            names.dead_letters,
            1,
            replication_factor,
            {"cleanup.policy": "delete", "retention.ms": str(dlq_retention_days * 24 * 3600 * 1000)},
        ),
    ]


def ensure_topics(admin: KafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Safe to run repeatedly."""
    existing = set(admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    for spec in missing:
        try:
            admin.create_topics(
                [
                    NewTopic(
                        spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config)
                    )
                ]
            )
            created.append(spec.name)
            log.info("created topic %s (%d partitions)", spec.name, spec.partitions)
        except TopicAlreadyExistsError:
            pass  # another process created it in between: fine
    return created


def ensure_catalog_topics(settings: KafkaSettings, names: TopicNames, partitions: int = 2) -> list[str]:
    admin = make_admin(settings)
    try:
        return ensure_topics(admin, catalog_topics(names, partitions))
    finally:
        admin.close()
