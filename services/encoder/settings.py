"""Encoder service configuration (YAML section `encoder`, environment prefix `VITRINE_ENCODER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.stream.kafka_security import KafkaSecuritySettings


class EncoderSettings(KafkaSecuritySettings, BaseSettings):
    # + kafka_security_protocol, kafka_sasl_*, kafka_ssl_* (Kafka SASL/SSL) from KafkaSecuritySettings
    model_config = SettingsConfigDict(env_prefix="VITRINE_ENCODER_", extra="forbid", frozen=True)

    model_dir: Path = Field(description="exported model directory (VITRINE_ENCODER_MODEL_DIR)")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="VITRINE_ENCODER_KAFKA_BOOTSTRAP_SERVERS"
    )
    products_topic: str = Field("catalog.products", description="VITRINE_ENCODER_PRODUCTS_TOPIC")
    vectors_topic: str = Field(
        "",
        description="embedded mode; default catalog.vectors, or catalog.vectors.<model version> with "
        "backfill (VITRINE_ENCODER_VECTORS_TOPIC)",
    )
    dead_letter_topic: str = Field("catalog.products.dlq", description="VITRINE_ENCODER_DEAD_LETTER_TOPIC")
    group_id: str = Field(
        "",
        description="consumer group; default vitrine-encoder, or vitrine-encoder-<model version> with "
        "backfill (VITRINE_ENCODER_GROUP_ID)",
    )
    backfill: bool = Field(
        False,
        description="build a new model's index: its own consumer group, vectors topic or collection, "
        "replaying catalog.products from the earliest offset, with progress (VITRINE_ENCODER_BACKFILL)",
    )
    exit_when_caught_up: bool = Field(
        False,
        description="stop once the log end seen at start is reached (VITRINE_ENCODER_EXIT_WHEN_CAUGHT_UP)",
    )
    sink: Literal["kafka", "qdrant"] = Field(
        "kafka",
        description="kafka: the vectors topic (embedded mode); qdrant: a Qdrant server "
        "(VITRINE_ENCODER_SINK)",
    )
    qdrant_url: str = Field("http://127.0.0.1:6333", description="server mode (VITRINE_ENCODER_QDRANT_URL)")
    qdrant_collection: str = Field(
        "", description="server mode; default vitrine-<model version> (VITRINE_ENCODER_QDRANT_COLLECTION)"
    )
    qdrant_alias: str = Field(
        "", description="alias pointed at the collection once caught up (VITRINE_ENCODER_QDRANT_ALIAS)"
    )
    qdrant_api_key: SecretStr | None = Field(None, description="VITRINE_ENCODER_QDRANT_API_KEY")
    max_batch: int = Field(
        256, ge=1, le=10_000, description="micro-batch size cap (VITRINE_ENCODER_MAX_BATCH)"
    )
    max_wait_ms: int = Field(
        50, ge=0, le=60_000, description="micro-batch wait cap (VITRINE_ENCODER_MAX_WAIT_MS)"
    )
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="/metrics port, 0 = any (VITRINE_ENCODER_METRICS_PORT)"
    )
    create_topics: bool = Field(
        True, description="create missing topics at start (VITRINE_ENCODER_CREATE_TOPICS)"
    )
    topic_partitions: int = Field(
        2, ge=1, description="partitions for created topics (VITRINE_ENCODER_TOPIC_PARTITIONS)"
    )

    def resolved_group_id(self, model_version: str) -> str:
        return self.group_id or (f"vitrine-encoder-{model_version}" if self.backfill else "vitrine-encoder")

    def resolved_vectors_topic(self, model_version: str) -> str:
        return self.vectors_topic or (
            f"catalog.vectors.{model_version}" if self.backfill else "catalog.vectors"
        )

    def resolved_collection(self, model_version: str) -> str:
        return self.qdrant_collection or f"vitrine-{model_version}"
