"""Recommender service configuration (YAML section `recommender`, env prefix `VITRINE_RECOMMENDER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.errors import ConfigError
from vitrine.serving.security import parse_tokens


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITRINE_RECOMMENDER_", extra="forbid", frozen=True)

    model_dir: Path = Field(description="exported model directory (VITRINE_RECOMMENDER_MODEL_DIR)")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="VITRINE_RECOMMENDER_KAFKA_BOOTSTRAP_SERVERS"
    )
    vectors_topic: str = Field("catalog.vectors", description="VITRINE_RECOMMENDER_VECTORS_TOPIC")
    index_mode: Literal["embedded", "server"] = Field(
        "embedded",
        description="embedded: local Qdrant Edge fed from the vectors topic; server: a Qdrant server "
        "(VITRINE_RECOMMENDER_INDEX_MODE)",
    )
    qdrant_url: str = Field(
        "http://127.0.0.1:6333", description="server mode (VITRINE_RECOMMENDER_QDRANT_URL)"
    )
    qdrant_collection: str = Field(
        "vitrine", description="collection or alias to read (VITRINE_RECOMMENDER_QDRANT_COLLECTION)"
    )
    qdrant_api_key: SecretStr | None = Field(None, description="VITRINE_RECOMMENDER_QDRANT_API_KEY")
    index_path: Path = Field(
        Path("artifacts/recommender-index"),
        description="local Qdrant Edge shard (VITRINE_RECOMMENDER_INDEX_PATH)",
    )
    grpc_host: str = Field("127.0.0.1", description="VITRINE_RECOMMENDER_GRPC_HOST")
    grpc_port: int = Field(
        50051, ge=0, le=65535, description="0 = any free port (VITRINE_RECOMMENDER_GRPC_PORT)"
    )
    grpc_workers: int = Field(
        8, ge=1, le=256, description="handler threads (VITRINE_RECOMMENDER_GRPC_WORKERS)"
    )
    metrics_port: int = Field(
        9102, ge=0, le=65535, description="/metrics port (VITRINE_RECOMMENDER_METRICS_PORT)"
    )
    startup_timeout_s: float = Field(
        300.0,
        gt=0,
        description="max wait to catch up with the vectors topic (VITRINE_RECOMMENDER_STARTUP_TIMEOUT_S)",
    )
    shutdown_grace_s: float = Field(5.0, ge=0, description="VITRINE_RECOMMENDER_SHUTDOWN_GRACE_S")

    # -- gRPC transport security and authentication (docs/OPERATIONS.md, "Security") --
    tls_cert_file: Path | None = Field(
        None, description="server certificate chain, PEM; set = TLS (VITRINE_RECOMMENDER_TLS_CERT_FILE)"
    )
    tls_key_file: Path | None = Field(
        None, validate_default=True, description="its private key, PEM (VITRINE_RECOMMENDER_TLS_KEY_FILE)"
    )
    tls_client_ca_file: Path | None = Field(
        None,
        validate_default=True,
        description="CA bundle for client certificates; set = mTLS required "
        "(VITRINE_RECOMMENDER_TLS_CLIENT_CA_FILE)",
    )
    auth_tokens: SecretStr | None = Field(
        None,
        description="bearer tokens accepted, comma-separated (two during a rotation); unset = none needed; "
        "the health service stays open (VITRINE_RECOMMENDER_AUTH_TOKENS)",
    )

    @field_validator("tls_key_file")
    @classmethod
    def _tls_pair(cls, key_file: Path | None, info: ValidationInfo) -> Path | None:
        if (key_file is None) != (info.data.get("tls_cert_file") is None):
            raise ValueError(
                "set both VITRINE_RECOMMENDER_TLS_CERT_FILE and VITRINE_RECOMMENDER_TLS_KEY_FILE, or neither"
            )
        return key_file

    @field_validator("tls_client_ca_file")
    @classmethod
    def _mtls_needs_tls(cls, ca_file: Path | None, info: ValidationInfo) -> Path | None:
        if ca_file is not None and info.data.get("tls_cert_file") is None:
            raise ValueError("mTLS needs TLS: set VITRINE_RECOMMENDER_TLS_CERT_FILE and _KEY_FILE too")
        return ca_file

    def auth_token_list(self) -> tuple[str, ...]:
        """The accepted bearer tokens (empty = no authentication); the only place they are revealed."""
        if self.auth_tokens is None:
            return ()
        try:
            return parse_tokens(self.auth_tokens.get_secret_value())
        except ValueError as e:  # the message names the token's position, never its value
            raise ConfigError(f"VITRINE_RECOMMENDER_AUTH_TOKENS: {e}") from e

    # -- Kafka authentication and encryption, passed to kafka-python (docs/OPERATIONS.md, "Security") --
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="VITRINE_RECOMMENDER_KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_username: str | None = Field(None, description="VITRINE_RECOMMENDER_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, description="VITRINE_RECOMMENDER_KAFKA_SASL_PASSWORD")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None,
        validate_default=True,
        description="required with SASL_* (VITRINE_RECOMMENDER_KAFKA_SASL_MECHANISM)",
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="CA bundle for the brokers; unset = system roots (VITRINE_RECOMMENDER_KAFKA_SSL_CAFILE)",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="client certificate for mTLS to the brokers (VITRINE_RECOMMENDER_KAFKA_SSL_CERTFILE)",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, validate_default=True, description="its private key (VITRINE_RECOMMENDER_KAFKA_SSL_KEYFILE)"
    )
    kafka_ssl_password: SecretStr | None = Field(
        None, description="password of an encrypted private key (VITRINE_RECOMMENDER_KAFKA_SSL_PASSWORD)"
    )
    kafka_ssl_check_hostname: bool = Field(True, description="VITRINE_RECOMMENDER_KAFKA_SSL_CHECK_HOSTNAME")

    # Cross-field checks sit on non-secret fields: a validation error carries its field's input value.
    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_complete(cls, mechanism: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol.startswith("SASL_"):
            missing = [
                f"VITRINE_RECOMMENDER_KAFKA_SASL_{name.upper()}"
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
                "a SASL mechanism needs VITRINE_RECOMMENDER_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
            )
        return mechanism

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _ssl_files(cls, keyfile: Path | None, info: ValidationInfo) -> Path | None:
        if (keyfile is None) != (info.data.get("kafka_ssl_certfile") is None):
            raise ValueError(
                "set both VITRINE_RECOMMENDER_KAFKA_SSL_CERTFILE and VITRINE_RECOMMENDER_KAFKA_SSL_KEYFILE, or neither"
            )
        uses_files = keyfile is not None or info.data.get("kafka_ssl_cafile") is not None
        if uses_files and info.data.get("kafka_security_protocol") not in ("SSL", "SASL_SSL"):
            raise ValueError("TLS files need VITRINE_RECOMMENDER_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
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
