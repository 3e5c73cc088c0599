"""Recommender service configuration (YAML section `recommender`, env prefix `VITRINE_RECOMMENDER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITRINE_RECOMMENDER_", extra="forbid", frozen=True)

    model_dir: Path = Field(description="exported model directory (VITRINE_RECOMMENDER_MODEL_DIR)")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="VITRINE_RECOMMENDER_KAFKA_BOOTSTRAP_SERVERS")
    vectors_topic: str = Field("catalog.vectors", description="VITRINE_RECOMMENDER_VECTORS_TOPIC")
    index_mode: Literal["embedded"] = Field("embedded", description="VITRINE_RECOMMENDER_INDEX_MODE")
    index_path: Path = Field(
        Path("artifacts/recommender-index"), description="local Qdrant Edge shard (VITRINE_RECOMMENDER_INDEX_PATH)"
    )
    grpc_host: str = Field("127.0.0.1", description="VITRINE_RECOMMENDER_GRPC_HOST")
    grpc_port: int = Field(50051, ge=0, le=65535, description="0 = any free port (VITRINE_RECOMMENDER_GRPC_PORT)")
    grpc_workers: int = Field(8, ge=1, le=256, description="handler threads (VITRINE_RECOMMENDER_GRPC_WORKERS)")
    metrics_port: int = Field(9102, ge=0, le=65535, description="/metrics port (VITRINE_RECOMMENDER_METRICS_PORT)")
    startup_timeout_s: float = Field(
        300.0, gt=0, description="max wait to catch up with the vectors topic (VITRINE_RECOMMENDER_STARTUP_TIMEOUT_S)"
    )
    shutdown_grace_s: float = Field(5.0, ge=0, description="VITRINE_RECOMMENDER_SHUTDOWN_GRACE_S")
