"""Encoder service configuration (YAML section `encoder`, environment prefix `VITRINE_ENCODER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EncoderSettings(BaseSettings):
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

    # -- Kafka authentication and encryption, passed to kafka-python (docs/OPERATIONS.md, "Security") --
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="VITRINE_ENCODER_KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_username: str | None = Field(None, description="VITRINE_ENCODER_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, description="VITRINE_ENCODER_KAFKA_SASL_PASSWORD")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validate_default=True, description="required with SASL_* (VITRINE_ENCODER_KAFKA_SASL_MECHANISM)"
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle for the brokers; unset = system roots (VITRINE_ENCODER_KAFKA_SSL_CAFILE)"
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="client certificate for mTLS to the brokers (VITRINE_ENCODER_KAFKA_SSL_CERTFILE)"
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, validate_default=True, description="its private key (VITRINE_ENCODER_KAFKA_SSL_KEYFILE)"
    )
    kafka_ssl_password: SecretStr | None = Field(
        None, description="password of an encrypted private key (VITRINE_ENCODER_KAFKA_SSL_PASSWORD)"
    )
    kafka_ssl_check_hostname: bool = Field(True, description="VITRINE_ENCODER_KAFKA_SSL_CHECK_HOSTNAME")

    # Cross-field checks sit on non-secret fields: a validation error carries its field's input value.
    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_complete(cls, mechanism: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol.startswith("SASL_"):
            missing = [
                f"VITRINE_ENCODER_KAFKA_SASL_{name.upper()}"
                for name, value in (
                    ("mechanism", mechanism),
                    ("username", info.data.get("kafka_sasl_username")),
                    ("password", info.data.get("kafka_sasl_password")),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"security protocol {protocol} needs {', '.join(missing)}")
        elif mechanism is not None:
            raise ValueError(
                "a SASL mechanism needs VITRINE_ENCODER_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
            )
        return mechanism

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _ssl_files(cls, keyfile: Path | None, info: ValidationInfo) -> Path | None:
        if (keyfile is None) != (info.data.get("kafka_ssl_certfile") is None):
            raise ValueError(
                "set both VITRINE_ENCODER_KAFKA_SSL_CERTFILE and VITRINE_ENCODER_KAFKA_SSL_KEYFILE, or neither"
            )
        uses_files = keyfile is not None or info.data.get("kafka_ssl_cafile") is not None
        if uses_files and info.data.get("kafka_security_protocol") not in ("SSL", "SASL_SSL"):
            raise ValueError("TLS files need VITRINE_ENCODER_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        return keyfile

    def kafka_security(self) -> dict[str, Any]:
        """kafka-python options for KafkaSettings.security; the only place the secrets are revealed."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol.endswith("SSL"):
            options["ssl_check_hostname"] = self.kafka_ssl_check_hostname
            for option, path in (
                ("ssl_cafile", self.kafka_ssl_cafile),
                ("ssl_certfile", self.kafka_ssl_certfile),
                ("ssl_keyfile", self.kafka_ssl_keyfile),
            ):
                if path is not None:
                    options[option] = str(path)
            if self.kafka_ssl_password is not None:
                options["ssl_password"] = self.kafka_ssl_password.get_secret_value()
        return options
