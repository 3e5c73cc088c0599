"""Kafka connection settings and client factories (kafka-python), shared by every service and tool.

Clients are created by the caller when needed (no network in constructors here); the caller's config
is never mutated; precedence is library defaults < caller overrides < connection settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient


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

    def connection(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers.split(","), **dict(self.security)}


PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "acks": "all",  # a write counts only once every in-sync replica has it
    "linger_ms": 5,
    "retries": 10,
    "max_in_flight_requests_per_connection": 1,  # keeps per-key order across retries
    "compression_type": None,
}

CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable_auto_commit": False,  # offsets are committed only after the sink acknowledged
    "auto_offset_reset": "earliest",
    "max_poll_records": 500,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
}


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    config = {**PRODUCER_DEFAULTS, "client_id": settings.client_id, **overrides, **settings.connection()}
    return KafkaProducer(**config)


def make_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    config = {**CONSUMER_DEFAULTS, "client_id": settings.client_id, **overrides, **settings.connection()}
    return KafkaConsumer(*topics, **config)


def make_admin(settings: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    config = {"client_id": f"{settings.client_id}-admin", **overrides, **settings.connection()}
    return KafkaAdminClient(**config)
