"""Security settings of the services: gRPC TLS and tokens, Kafka SASL/SSL passed to kafka-python,
secrets kept out of reprs and error messages, and no pickle anywhere a model or index is loaded."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from vitrine.config import load_settings
from vitrine.errors import ConfigError
from vitrine.stream.kafka import KafkaSettings
from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.recommender.settings import RecommenderSettings

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "hunter2-kafka-password"
TOKEN = "a-very-long-bearer-token-0123456789"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("VITRINE_")]:
        monkeypatch.delenv(key)


def _encoder(**values: Any) -> EncoderSettings:
    return load_settings(EncoderSettings, None, "encoder", model_dir=Path("/models/m"), **values)


def _recommender(**values: Any) -> RecommenderSettings:
    return load_settings(RecommenderSettings, None, "recommender", model_dir=Path("/models/m"), **values)


# -- gRPC ---------------------------------------------------------------------------------------------


def test_recommender_security_is_off_by_default() -> None:
    settings = _recommender()
    assert settings.tls_cert_file is None and settings.auth_token_list() == ()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls_cert_file": "/tls/tls.crt"}, "VITRINE_RECOMMENDER_TLS_KEY_FILE"),
        ({"tls_key_file": "/tls/tls.key"}, "VITRINE_RECOMMENDER_TLS_CERT_FILE"),
        ({"tls_client_ca_file": "/tls/ca.crt"}, "mTLS needs TLS"),
    ],
)
def test_incomplete_tls_settings_are_refused_at_start(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _recommender(**values)


def test_tokens_come_from_the_environment_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_RECOMMENDER_AUTH_TOKENS", f"{TOKEN}, {TOKEN}-next")
    settings = _recommender()
    assert settings.auth_token_list() == (TOKEN, f"{TOKEN}-next")
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


def test_a_weak_token_is_refused_without_being_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_RECOMMENDER_AUTH_TOKENS", f"{TOKEN},hunter2")
    with pytest.raises(ConfigError, match=r"VITRINE_RECOMMENDER_AUTH_TOKENS: token #2 is shorter") as err:
        _recommender().auth_token_list()
    assert "hunter2" not in str(err.value)


# -- Kafka ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [_encoder, _recommender])
def test_plaintext_kafka_passes_nothing_extra(build: Any) -> None:
    assert build().kafka_security() == {}


def test_sasl_ssl_reaches_kafka_python_as_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_ENCODER_KAFKA_SASL_PASSWORD", PASSWORD)
    settings = _encoder(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="vitrine-encoder",
        kafka_ssl_cafile="/etc/vitrine/kafka-ca/ca.crt",
    )
    assert PASSWORD not in repr(settings)
    security = settings.kafka_security()
    assert security == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "vitrine-encoder",
        "sasl_plain_password": PASSWORD,
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/vitrine/kafka-ca/ca.crt",
    }
    connection = KafkaSettings("broker:9093", security=security).connection()
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        unknown = set(connection) - set(client.DEFAULT_CONFIG)
        assert not unknown, f"{client.__name__} does not know {unknown}"


def test_mutual_tls_to_the_brokers() -> None:
    settings = _recommender(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile="/tls/client.crt",
        kafka_ssl_keyfile="/tls/client.key",
        kafka_ssl_password=PASSWORD,
    )
    security = settings.kafka_security()
    assert security["ssl_certfile"] == "/tls/client.crt" and security["ssl_keyfile"] == "/tls/client.key"
    assert security["ssl_password"] == PASSWORD and "sasl_mechanism" not in security


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
            },
            "VITRINE_ENCODER_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": PASSWORD},
            "KAFKA_SASL_MECHANISM",
        ),
        ({"kafka_sasl_mechanism": "PLAIN"}, "needs VITRINE_ENCODER_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"kafka_ssl_cafile": "/ca.crt"}, "TLS files need VITRINE_ENCODER_KAFKA_SECURITY_PROTOCOL=SSL"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.crt"}, "KAFKA_SSL_KEYFILE, or neither"),
        ({"kafka_security_protocol": "KERBEROS"}, "kafka_security_protocol"),
    ],
)
def test_incomplete_kafka_security_is_refused_without_echoing_secrets(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        _encoder(**values)
    assert PASSWORD not in str(err.value) and PASSWORD not in str(err.value.__cause__)


def test_both_services_offer_the_same_kafka_security_settings() -> None:
    def fields(cls: Any) -> dict[str, str]:
        return {
            n: str(f.annotation)
            for n, f in cls.model_fields.items()
            if n.startswith("kafka_") and n != "kafka_bootstrap_servers"
        }

    assert fields(EncoderSettings) == fields(RecommenderSettings)
    assert len(fields(EncoderSettings)) == 9


@pytest.mark.parametrize("cls", [EncoderSettings, RecommenderSettings])
def test_every_setting_documents_its_environment_variable(cls: Any) -> None:
    prefix = cls.model_config["env_prefix"]
    missing = [n for n, f in cls.model_fields.items() if f"{prefix}{n.upper()}" not in (f.description or "")]
    assert not missing, f"{cls.__name__}: descriptions lack the variable of {missing}"


# -- no pickle -------------------------------------------------------------------------------------


def test_nothing_the_services_load_can_execute_code() -> None:
    """Models are ONNX + JSON + .npy, weights safetensors or torch with weights_only: never pickle."""
    problems = []
    for path in [*(REPO / "libs" / "vitrine").rglob("*.py"), *(REPO / "services").rglob("*.py")]:
        if "v1" in path.relative_to(REPO).parts:
            continue  # generated protobuf code
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(
                    n.split(".")[0] in {"pickle", "cloudpickle", "dill", "joblib", "shelve"} for n in names
                ):
                    problems.append(f"{where}: imports a pickle module")
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                allow = keywords.get("allow_pickle")
                if isinstance(allow, ast.Constant) and allow.value is True:
                    problems.append(f"{where}: allow_pickle=True")
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "load"
                    and getattr(func.value, "id", "") == "torch"
                ):
                    weights_only = keywords.get("weights_only")
                    if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                        problems.append(f"{where}: torch.load without weights_only=True")
    assert not problems
