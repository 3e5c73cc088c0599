"""Kafka authentication and encryption settings of a service, passed to kafka-python.

`KafkaSecuritySettings` is mixed into a service's settings class (`class EncoderSettings(
KafkaSecuritySettings, BaseSettings)`), which gains the `kafka_security_*`, `kafka_sasl_*` and
`kafka_ssl_*` fields, their start-up checks and `kafka_security()`. Everything that names an
environment variable (descriptions, error messages) takes it from the service's `env_prefix`, e.g.
`VITRINE_ENCODER_KAFKA_SASL_PASSWORD` (docs/OPERATIONS.md, "Security").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from vitrine.config import describe_with_variables, env_var


class KafkaSecuritySettings(BaseModel):
    """Mixin for a service's settings; its descriptions get the service's variables when mixed in."""

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validate_default=True, description="required with SASL_*"
    )
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for the brokers; unset = system roots")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate for mTLS to the brokers")
    kafka_ssl_keyfile: Path | None = Field(None, validate_default=True, description="its private key")
    kafka_ssl_password: SecretStr | None = Field(None, description="password of an encrypted private key")
    kafka_ssl_check_hostname: bool = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Make each field's description name the subclass's variable: "<text> (<VARIABLE>)"."""
        super().__pydantic_init_subclass__(**kwargs)
        describe_with_variables(cls, KafkaSecuritySettings)

    # Cross-field checks sit on non-secret fields: a validation error carries its field's input value.
    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_complete(cls, mechanism: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol.startswith("SASL_"):
            missing = [
                env_var(cls, f"kafka_sasl_{name}")
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
                f"a SASL mechanism needs {env_var(cls, 'kafka_security_protocol')}=SASL_SSL (or SASL_PLAINTEXT)"
            )
        return mechanism

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _ssl_files(cls, keyfile: Path | None, info: ValidationInfo) -> Path | None:
        if (keyfile is None) != (info.data.get("kafka_ssl_certfile") is None):
            raise ValueError(
                f"set both {env_var(cls, 'kafka_ssl_certfile')} and {env_var(cls, 'kafka_ssl_keyfile')}, "
                "or neither"
            )
        uses_files = keyfile is not None or info.data.get("kafka_ssl_cafile") is not None
        if uses_files and info.data.get("kafka_security_protocol") not in ("SSL", "SASL_SSL"):
            raise ValueError(f"TLS files need {env_var(cls, 'kafka_security_protocol')}=SSL or SASL_SSL")
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
