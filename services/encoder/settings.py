"""Encoder service configuration (YAML section `encoder`, environment prefix `VITRINE_ENCODER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.index.settings import IndexSettings
from vitrine.stream.batch_policy import BatchPolicy
from vitrine.stream.kafka_security import KafkaSecuritySettings

# the former `sink` setting, read for configurations written before `index_mode` replaced it
_SINK_MODES = {"kafka": "embedded", "qdrant": "server"}


class EncoderSettings(IndexSettings, KafkaSecuritySettings, BaseSettings):
    # + index_mode, vectors_topic, qdrant_url, qdrant_collection, qdrant_api_key (where the vectors go,
    # named as the recommender reads them) from IndexSettings; kafka_security_protocol, kafka_sasl_*,
    # kafka_ssl_* (Kafka SASL/SSL) from KafkaSecuritySettings
    model_config = SettingsConfigDict(env_prefix="VITRINE_ENCODER_", extra="forbid", frozen=True)

    model_dir: Path = Field(description="exported model directory (VITRINE_ENCODER_MODEL_DIR)")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="VITRINE_ENCODER_KAFKA_BOOTSTRAP_SERVERS"
    )
    products_topic: str = Field("catalog.products", description="VITRINE_ENCODER_PRODUCTS_TOPIC")
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
    dead_letter_invalid: bool | None = Field(
        None,
        description="write events that break the contract (undecodable, missing fields, ...) to the "
        "dead-letter topic; default: only the live encoder does (not a backfill), so a bad event gives "
        "one dead letter however many models are encoded; encode failures are always written "
        "(VITRINE_ENCODER_DEAD_LETTER_INVALID)",
    )
    exit_when_caught_up: bool = Field(
        False,
        description="stop once the log end seen at start is reached (VITRINE_ENCODER_EXIT_WHEN_CAUGHT_UP)",
    )
    sink: Literal["kafka", "qdrant"] | None = Field(
        None,
        description="deprecated, use index_mode: kafka = embedded, qdrant = server (VITRINE_ENCODER_SINK)",
    )
    exactly_once: bool = Field(
        True,
        description="embedded mode: write each batch's vectors, dead letters and consumed offsets in one "
        "Kafka transaction, fenced by group generation (KIP-447), so an encoder paused past its "
        "session timeout cannot leave stale vectors behind; readers of the vectors topic must use "
        "isolation_level=read_committed. false: plain writes and commits, for brokers without "
        "transactions (VITRINE_ENCODER_EXACTLY_ONCE)",
    )
    instance_id: str = Field(
        "",
        description="this encoder's identity among the group's encoders on one host, part of its "
        "transactional.id; default: the lowest number free on this host (a lock file in the temp "
        "directory, held while the process lives), so one encoder per host or container is 0 and a "
        "restarted process gets its predecessor's number back (VITRINE_ENCODER_INSTANCE_ID)",
    )
    transactional_id: str = Field(
        "",
        description="exactly-once mode: the producer's transactional.id, unique among live encoders "
        "and stable across restarts of one; default <group id>-<host name>-<instance id> "
        "(VITRINE_ENCODER_TRANSACTIONAL_ID)",
    )
    transaction_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=900_000,
        description="exactly-once mode: the broker aborts a transaction left open this long (a killed "
        "encoder's), which until then holds back read_committed readers of its partitions; must not "
        "exceed the broker's transaction.max.timeout.ms (VITRINE_ENCODER_TRANSACTION_TIMEOUT_MS)",
    )
    qdrant_alias: str = Field(
        "",
        description="server mode: alias pointed at the collection once caught up (VITRINE_ENCODER_QDRANT_ALIAS)",
    )
    max_batch: int = Field(
        BatchPolicy.max_records,
        ge=1,
        le=10_000,
        description="micro-batch size cap: a busy partition commits one transaction per this many "
        "records (VITRINE_ENCODER_MAX_BATCH)",
    )
    max_wait_ms: int = Field(
        BatchPolicy.max_wait_ms,
        ge=0,
        le=60_000,
        description="micro-batch wait cap: the longest a batch's first record waits for more before "
        "the batch is encoded and committed (VITRINE_ENCODER_MAX_WAIT_MS)",
    )
    model_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="threads of the item tower's onnxruntime session and of numpy's BLAS; the encoder "
        "runs one batch at a time on one worker thread and scales by processes (one per partition or "
        "more), so 1 keeps idle pools from spinning on its cores; 0 = the libraries' defaults, one "
        "per core (VITRINE_ENCODER_MODEL_THREADS)",
    )
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="/metrics port, 0 = any (VITRINE_ENCODER_METRICS_PORT)"
    )
    metrics_host: str = Field(
        "0.0.0.0",
        description="address /metrics binds: Prometheus scrapes it from another host or pod; "
        "127.0.0.1 keeps it local (VITRINE_ENCODER_METRICS_HOST)",
    )
    create_topics: bool = Field(
        True, description="create missing topics at start (VITRINE_ENCODER_CREATE_TOPICS)"
    )
    topic_partitions: int = Field(
        2, ge=1, description="partitions for created topics (VITRINE_ENCODER_TOPIC_PARTITIONS)"
    )

    @model_validator(mode="before")
    @classmethod
    def _sink_is_index_mode(cls, data: Any) -> Any:
        """`sink: kafka|qdrant` (before index_mode) still works; both set must agree."""
        if isinstance(data, dict) and data.get("sink") is not None:
            mode = _SINK_MODES.get(data["sink"])
            if mode is not None and data.get("index_mode", mode) != mode:
                raise ValueError(
                    f"sink {data['sink']!r} means index_mode {mode!r}, but index_mode is "
                    f"{data['index_mode']!r}; set only VITRINE_ENCODER_INDEX_MODE"
                )
            if mode is not None:
                data = {**data, "index_mode": mode}
        return data

    def resolved_group_id(self, model_version: str) -> str:
        return self.group_id or (f"vitrine-encoder-{model_version}" if self.backfill else "vitrine-encoder")

    def resolved_dead_letter_invalid(self) -> bool:
        return (not self.backfill) if self.dead_letter_invalid is None else self.dead_letter_invalid

    def resolved_transactional_id(self, model_version: str) -> str:
        """`transactional_id`, else <group id>-<host name>-<instance id> (claims a host slot when
        `instance_id` is empty: call once per process)."""
        from vitrine.stream.transactions import default_transactional_id, host_instance_slot

        if self.transactional_id:
            return self.transactional_id
        group_id = self.resolved_group_id(model_version)
        return default_transactional_id(group_id, self.instance_id or host_instance_slot(group_id))

    def resolved_vectors_topic(self, model_version: str) -> str:
        """A backfill writes a new model's own topic; the live encoder writes catalog.vectors."""
        return self.topic_for(model_version, live=not self.backfill)

    def resolved_collection(self, model_version: str) -> str:
        return self.collection_to_write(model_version)
