"""Security defaults: secrets never in a repr or a log line; secrets never sent in clear text to
another host without an explicit override; /metrics binds where gRPC binds."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from kafka.errors import KafkaError

from vitrine.errors import ConfigError
from vitrine.index.server import QdrantServerConfig
from vitrine.stream.kafka import KafkaSettings, make_admin
from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.recommender.settings import RecommenderSettings

PASSWORD = "sasl-pass-0123456789-secret"
API_KEY = "qdrant-key-0123456789-secret"
TOKEN = "bearer-token-0123456789-secret"
SECRETS = (PASSWORD, API_KEY, TOKEN)


def encoder_settings(**overrides: object) -> EncoderSettings:
    values: dict[str, object] = {
        "model_dir": Path("/models/m"),
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "vitrine",
        "kafka_sasl_password": PASSWORD,
        "qdrant_url": "https://qdrant.example:6333",
        "qdrant_api_key": API_KEY,
    }
    return EncoderSettings(**{**values, **overrides})  # type: ignore[arg-type]


def recommender_settings(**overrides: object) -> RecommenderSettings:
    return RecommenderSettings(model_dir=Path("/models/m"), auth_tokens=TOKEN, **overrides)  # type: ignore[arg-type]


def test_secrets_never_appear_in_a_repr() -> None:
    settings = encoder_settings()
    kafka = KafkaSettings("broker:9093", security=settings.kafka_security())
    shown = [
        repr(settings),
        str(settings),
        repr(kafka),
        str(kafka),
        repr(QdrantServerConfig("https://q", "c", 4, api_key=API_KEY)),
        repr(recommender_settings()),
        str(settings.model_dump()),
    ]
    assert PASSWORD in kafka.connection()["sasl_plain_password"]  # the secret is there, only hidden
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, text


def test_secrets_never_appear_in_logs_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    # kafka-python's admin client logs its whole configuration, password included, at DEBUG: the CLI
    # (`vitrine.cli.main`) keeps the kafka loggers at WARNING or above, whatever --log-level says
    from vitrine.cli import main as cli

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # what basicConfig(level="DEBUG") sets (a no-op under pytest's handlers)
    try:
        cli.configure_logging("DEBUG")
        settings = encoder_settings()
        kafka = KafkaSettings("127.0.0.1:1", security=settings.kafka_security())
        with pytest.raises(KafkaError):  # nothing listens there: the admin client gives up
            make_admin(kafka, request_timeout_ms=500, api_version_auto_timeout_ms=500)
        logging.getLogger("vitrine").debug("settings: %s / %r", settings, kafka)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("kafka").setLevel(logging.NOTSET)
    text = stream.getvalue() + caplog.text
    assert "settings:" in text
    for secret in SECRETS:
        assert secret not in text


def test_a_qdrant_api_key_over_http_to_another_host_is_refused_unless_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigError, match=r"clear text.*ALLOW_PLAINTEXT_SECRETS"):
        encoder_settings(qdrant_url="http://qdrant.qdrant.svc:6333").qdrant_key()
    assert encoder_settings(qdrant_url="http://127.0.0.1:6333").qdrant_key() == API_KEY  # loopback
    assert encoder_settings().qdrant_key() == API_KEY  # https
    allowed = encoder_settings(qdrant_url="http://qdrant:6333", allow_plaintext_secrets=True)
    with caplog.at_level(logging.WARNING):
        assert allowed.qdrant_key() == API_KEY
    assert "SECURITY" in caplog.text and API_KEY not in caplog.text


def test_bearer_tokens_over_plaintext_grpc_beyond_loopback_are_refused_unless_allowed() -> None:
    from vitrine_services.recommender.service import create_service

    with pytest.raises(ConfigError, match="bearer tokens would travel in clear text"):
        create_service(recommender_settings(grpc_host="0.0.0.0", grpc_port=0, metrics_port=0))


def test_metrics_bind_where_grpc_binds_unless_configured() -> None:
    assert recommender_settings().resolved_metrics_host() == "127.0.0.1"
    assert recommender_settings(grpc_host="0.0.0.0").resolved_metrics_host() == "0.0.0.0"
    assert recommender_settings(metrics_host="10.0.0.5").resolved_metrics_host() == "10.0.0.5"
