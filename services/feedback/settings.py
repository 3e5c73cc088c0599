"""Feedback service configuration (YAML section `feedback`, environment prefix `VITRINE_FEEDBACK_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.stream.kafka_security import KafkaSecuritySettings


class FeedbackSettings(KafkaSecuritySettings, BaseSettings):
    # + kafka_security_protocol, kafka_sasl_*, kafka_ssl_* (Kafka SASL/SSL) from KafkaSecuritySettings
    model_config = SettingsConfigDict(env_prefix="VITRINE_FEEDBACK_", extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="VITRINE_FEEDBACK_KAFKA_BOOTSTRAP_SERVERS"
    )
    interactions_topic: str = Field("catalog.interactions", description="VITRINE_FEEDBACK_INTERACTIONS_TOPIC")
    dead_letter_topic: str = Field(
        "catalog.interactions.dlq", description="VITRINE_FEEDBACK_DEAD_LETTER_TOPIC"
    )
    results_topic: str = Field(
        "catalog.experiments", description="the arms' cumulative results (VITRINE_FEEDBACK_RESULTS_TOPIC)"
    )
    group_id: str = Field("vitrine-feedback", description="consumer group (VITRINE_FEEDBACK_GROUP_ID)")
    changelog_topic: str = Field(
        "", description="the state changelog; default <group id>-state (VITRINE_FEEDBACK_CHANGELOG_TOPIC)"
    )
    instance_id: str = Field(
        "",
        description="part of the transactional.id; default the lowest number free on this host, so a "
        "restarted process fences its predecessor at once (VITRINE_FEEDBACK_INSTANCE_ID)",
    )
    transactional_id: str = Field(
        "", description="default <group id>-<host name>-<instance id> (VITRINE_FEEDBACK_TRANSACTIONAL_ID)"
    )
    transaction_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=900_000,
        description="the broker aborts a transaction left open this long (VITRINE_FEEDBACK_TRANSACTION_TIMEOUT_MS)",
    )
    attribution_window_s: float = Field(
        3600.0,
        gt=0,
        description="an outcome counts for a list up to this long after its impression, in event time "
        "(VITRINE_FEEDBACK_ATTRIBUTION_WINDOW_S)",
    )
    clock_skew_s: float = Field(
        60.0,
        ge=0,
        description="outcomes this much before their impression still count (VITRINE_FEEDBACK_CLOCK_SKEW_S)",
    )
    lateness_s: float = Field(
        600.0,
        ge=0,
        description="a list's state is kept this long after its window for late outcomes (VITRINE_FEEDBACK_LATENESS_S)",
    )
    max_future_s: float = Field(
        3600.0,
        gt=0,
        description="an event time further than this after its record's timestamp is dead-lettered "
        "(VITRINE_FEEDBACK_MAX_FUTURE_S)",
    )
    results_interval_s: float = Field(
        10.0,
        ge=0,
        description="how often a partition's changed arms are written to the results topic (and whenever a "
        "batch reaches the log end) (VITRINE_FEEDBACK_RESULTS_INTERVAL_S)",
    )
    max_batch: int = Field(
        1000, ge=1, le=100_000, description="records per transaction (VITRINE_FEEDBACK_MAX_BATCH)"
    )
    max_wait_ms: int = Field(
        100, ge=0, le=60_000, description="batch wait cap (VITRINE_FEEDBACK_MAX_WAIT_MS)"
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="test level for the exported intervals (VITRINE_FEEDBACK_ALPHA)"
    )
    mixture_sd: float = Field(
        0.1, gt=0, description="sequential test's mixture sd on the log-lift (VITRINE_FEEDBACK_MIXTURE_SD)"
    )
    metrics_port: int = Field(
        9103, ge=0, le=65535, description="/metrics port, 0 = any (VITRINE_FEEDBACK_METRICS_PORT)"
    )
    create_topics: bool = Field(
        True, description="create missing topics at start (VITRINE_FEEDBACK_CREATE_TOPICS)"
    )
    topic_partitions: int = Field(
        2, ge=1, description="partitions for a created interactions topic (VITRINE_FEEDBACK_TOPIC_PARTITIONS)"
    )

    def resolved_changelog_topic(self) -> str:
        return self.changelog_topic or f"{self.group_id}-state"

    def resolved_transactional_id(self) -> str:
        """`transactional_id`, else <group id>-<host name>-<instance id> (claims a host slot)."""
        from vitrine.stream.transactions import default_transactional_id, host_instance_slot

        if self.transactional_id:
            return self.transactional_id
        return default_transactional_id(self.group_id, self.instance_id or host_instance_slot(self.group_id))
