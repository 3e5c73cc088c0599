"""Encoder service configuration (YAML section `encoder`, environment prefix `VITRINE_ENCODER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EncoderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITRINE_ENCODER_", extra="forbid", frozen=True)

    model_dir: Path = Field(description="exported model directory (VITRINE_ENCODER_MODEL_DIR)")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="VITRINE_ENCODER_KAFKA_BOOTSTRAP_SERVERS")
    products_topic: str = Field("catalog.products", description="VITRINE_ENCODER_PRODUCTS_TOPIC")
    vectors_topic: str = Field("catalog.vectors", description="VITRINE_ENCODER_VECTORS_TOPIC (embedded mode)")
    dead_letter_topic: str = Field("catalog.products.dlq", description="VITRINE_ENCODER_DEAD_LETTER_TOPIC")
    group_id: str = Field("vitrine-encoder", description="consumer group (VITRINE_ENCODER_GROUP_ID)")
    sink: Literal["kafka"] = Field("kafka", description="where vectors go (VITRINE_ENCODER_SINK)")
    max_batch: int = Field(256, ge=1, le=10_000, description="micro-batch size cap (VITRINE_ENCODER_MAX_BATCH)")
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="micro-batch wait cap (VITRINE_ENCODER_MAX_WAIT_MS)")
    metrics_port: int = Field(9101, ge=0, le=65535, description="/metrics port, 0 = any (VITRINE_ENCODER_METRICS_PORT)")
    create_topics: bool = Field(True, description="create missing topics at start (VITRINE_ENCODER_CREATE_TOPICS)")
    topic_partitions: int = Field(2, ge=1, description="partitions for created topics (VITRINE_ENCODER_TOPIC_PARTITIONS)")
