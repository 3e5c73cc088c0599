"""Settings of the dead-letter tool (`vitrine dlq`): YAML section `dlq`, env prefix `VITRINE_DLQ_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.stream.kafka_security import KafkaSecuritySettings


class DeadLetterToolSettings(KafkaSecuritySettings, BaseSettings):
    # + kafka_security_protocol, kafka_sasl_*, kafka_ssl_* (VITRINE_DLQ_KAFKA_*) from KafkaSecuritySettings
    model_config = SettingsConfigDict(env_prefix="VITRINE_DLQ_", extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="VITRINE_DLQ_KAFKA_BOOTSTRAP_SERVERS")
    topic: str = Field("catalog.products.dlq", description="the dead-letter topic (VITRINE_DLQ_TOPIC)")
