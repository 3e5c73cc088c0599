"""Kafka connection settings and client factories (kafka-python), shared by every service and tool.

Clients are created by the caller when needed (no network in constructors here); the caller's config
is never mutated; precedence is library defaults < caller overrides < connection settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

# kafka-python options that hold secrets: sasl_plain_password, ssl_password, sasl_oauth_token_provider...
_SECRET_OPTION = re.compile(r"password|secret|token|credential", re.IGNORECASE)


@dataclass(frozen=True)
class TopicNames:
    products: str = "catalog.products"
    vectors: str = "catalog.vectors"
    dead_letters: str = "catalog.products.dlq"


@dataclass(frozen=True)
class KafkaSettings:
    """Where the brokers are and how to authenticate (SASL/SSL settings pass straight to kafka-python)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "vitrine"
    # e.g. {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": ...}
    security: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Secrets (passwords, tokens) never appear: they are masked, the other options shown."""
        shown = {k: "**********" if _SECRET_OPTION.search(k) else v for k, v in self.security.items()}
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, client_id={self.client_id!r}, "
            f"security={shown!r})"
        )

    __str__ = __repr__

    def connection(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers.split(","), **dict(self.security)}


PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "acks": "all",  # a write counts only once every in-sync replica has it
    "linger_ms": 5,
    "retries": 10,
    "max_in_flight_requests_per_connection": 1,  # keeps per-key order across retries
    "compression_type": None,
}

# For producers that flush explicitly at the end of each unit of work (the encoder's sinks): a long
# linger lets records pile into large batches instead of waking the sender thread for nearly every
# record, and flush() sends everything at once anyway, so latency is not affected.
FLUSHING_PRODUCER: Mapping[str, Any] = {"linger_ms": 1000, "batch_size": 1024 * 1024}

CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable_auto_commit": False,  # offsets are committed only after the sink acknowledged
    "auto_offset_reset": "earliest",
    "max_poll_records": 500,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
    # partitions added to a topic are found at the next metadata refresh (kafka-python's default is
    # 5 minutes): the encoder group rebalances onto them, the vector feeds assign them
    "metadata_max_age_ms": 30_000,
    # The encoder writes the vectors topic (and its dead letters) in transactions: a reader must see
    # committed records only, or it would see the batches of fenced zombies and of retries that were
    # aborted. For the encoder's group consumer it also makes the offset fetch after a rebalance wait
    # for offsets still pending in a transaction (KIP-447). Topics written without transactions read
    # the same either way.
    "isolation_level": "read_committed",
}


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    config = {**PRODUCER_DEFAULTS, "client_id": settings.client_id, **overrides, **settings.connection()}
    return KafkaProducer(**config)


def make_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    config = {**CONSUMER_DEFAULTS, "client_id": settings.client_id, **overrides, **settings.connection()}
    return KafkaConsumer(*topics, **config)


def require_read_committed(consumer: KafkaConsumer, what: str) -> None:
    """Readers of the vectors topic must skip aborted transactions (zombie and retried batches)."""
    config = getattr(consumer, "config", None)
    if isinstance(config, dict) and config.get("isolation_level", "read_uncommitted") != "read_committed":
        raise ValueError(
            f"{what} reads {config.get('isolation_level', 'read_uncommitted')} records; the vectors "
            "topic is written in transactions and must be read with isolation_level='read_committed'"
        )


def make_admin(settings: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    config = {"client_id": f"{settings.client_id}-admin", **overrides, **settings.connection()}
    return KafkaAdminClient(**config)


def group_progress(settings: KafkaSettings, group_id: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (committed offset, log end offset) of a consumer group on a topic.

    Used for backfill progress, caught-up checks and tests; a partition the group never committed
    reports 0 as its committed offset.
    """
    from kafka.structs import TopicPartition

    admin = make_admin(settings)
    consumer = make_consumer(settings, client_id=f"{settings.client_id}-progress")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        committed = admin.list_group_offsets({group_id: partitions}).get(group_id, {})
        return {
            tp.partition: (max(0, committed[tp].offset) if tp in committed else 0, ends[tp])
            for tp in partitions
        }
    finally:
        admin.close()
        consumer.close()
