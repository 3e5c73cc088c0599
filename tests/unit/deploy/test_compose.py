"""docker-compose.yml cannot run here (no container engine): it is checked against the code instead.
Every command parses with the real CLI, every VITRINE_* variable is a real settings field with a valid
value, every host path exists in the repository, and the services agree on names and ports."""

from __future__ import annotations

import argparse
import base64
import os
import re
import runpy
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.feedback.topics import interaction_topics
from vitrine.stream.kafka import TopicNames
from vitrine.stream.topics import catalog_topics
from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.recommender.settings import RecommenderSettings

REPO = Path(__file__).resolve().parents[3]
SETTINGS: dict[str, type[BaseSettings]] = {"encoder": EncoderSettings, "recommender": RecommenderSettings}
PREFIX = {"encoder": "VITRINE_ENCODER_", "recommender": "VITRINE_RECOMMENDER_"}


def _interpolate(value: Any) -> Any:
    """Compose's variable substitution, as `docker compose up` does it with no .env file."""
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if default is None:
            raise AssertionError(f"${{{name}}} has no default: `docker compose up` would need it set")
        return default

    return re.sub(r"\$\{([A-Z0-9_]+)(:-([^}]*))?\}", sub, value).replace("$$", "$")


def _resolve(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return _interpolate(node)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _resolve(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form for environment (one variable per line)"
    return {k: str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes or exposes."""
    published = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    return published | {int(p) for p in service.get("expose", [])}


def _cli(command: str) -> argparse.ArgumentParser:
    """The real `vitrine` parser, with every command (the services' through their entry points)."""
    from vitrine.cli.main import build_parser

    return build_parser()


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host source, for the short volume syntax."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


def test_the_stack_has_every_part_the_issue_asks_for(services: dict[str, Any]) -> None:
    assert set(services) == {
        "kafka",
        "kafka-init",
        "qdrant",
        "encoder",
        "encoder-complementary",
        "recommender",
        "feedback",
        "prometheus",
        "grafana",
    }


def test_every_placement_is_served_complementary_by_its_own_model_and_encoder(
    services: dict[str, Any],
) -> None:
    # issue 17: compose served no complementary model, so Complementary answered FAILED_PRECONDITION
    enc, rec = _env(services["encoder-complementary"]), _env(services["recommender"])
    model_dir = rec["VITRINE_RECOMMENDER_COMPLEMENTARY_MODEL_DIR"]
    assert enc["VITRINE_ENCODER_MODEL_DIR"] == model_dir
    # the same host directory behind the path in both containers
    assert (
        _mounts(services["encoder-complementary"])[model_dir] == _mounts(services["recommender"])[model_dir]
    )
    # a backfill writes vitrine-<model version>, which the complementary model is read from; it must
    # not move the similar model's alias
    assert enc["VITRINE_ENCODER_BACKFILL"] == "true"
    assert "VITRINE_ENCODER_QDRANT_ALIAS" not in enc and "VITRINE_ENCODER_QDRANT_COLLECTION" not in enc
    assert services["recommender"]["depends_on"]["encoder-complementary"]["condition"] == "service_healthy"


def test_images_are_pinned_and_match_the_versions_the_code_uses(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        if image != "vitrine:latest":  # our own image, built from this checkout
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin a version, not {image}"
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}", "the broker the tests run"
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    client = next(d for d in deps if d.startswith("qdrant-client=="))
    client_minor = client.split("==")[1].rsplit(".", 1)[0]
    server = services["qdrant"]["image"].split(":v")[1]
    assert server.rsplit(".", 1)[0] == client_minor, "qdrant-client supports the server of its own minor"


def test_vitrine_services_run_the_one_image_with_commands_the_cli_accepts(services: dict[str, Any]) -> None:
    for name in ("encoder", "encoder-complementary", "recommender"):
        service = services[name]
        assert service["image"] == "vitrine:latest"
        args = _cli(name).parse_args(service["command"])
        assert args.command == name.split("-")[0]


@pytest.mark.parametrize("name", ["encoder", "encoder-complementary", "recommender"])
def test_every_vitrine_variable_is_a_settings_field_with_a_valid_value(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(services[name])
    cls, prefix = SETTINGS[name.split("-")[0]], PREFIX[name.split("-")[0]]
    vitrine_vars = {k: v for k, v in env.items() if k.startswith("VITRINE_")}
    assert vitrine_vars, f"{name} has no configuration"
    unknown = [
        k
        for k in vitrine_vars
        if not k.startswith(prefix) or k[len(prefix) :].lower() not in cls.model_fields
    ]
    assert not unknown, f"{name}: not fields of {cls.__name__}: {unknown}"
    for key in [k for k in os.environ if k.startswith("VITRINE_")]:
        monkeypatch.delenv(key)
    for key, value in vitrine_vars.items():
        monkeypatch.setenv(key, value)
    cls()  # type: ignore[call-arg]  # validates every value the way the service will at start


def test_the_services_agree_on_names_and_ports(services: dict[str, Any]) -> None:
    enc, rec = _env(services["encoder"]), _env(services["recommender"])
    # Kafka: the encoder talks to the broker's internal listener
    host, port = enc["VITRINE_ENCODER_KAFKA_BOOTSTRAP_SERVERS"].split(":")
    kafka_env = _env(services["kafka"])
    assert host == "kafka" and f"INTERNAL://kafka:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://:{port}" in kafka_env["KAFKA_LISTENERS"]
    # Qdrant: both talk to the qdrant service; the recommender reads the alias the encoder moves
    assert enc["VITRINE_ENCODER_INDEX_MODE"] == "server" and rec["VITRINE_RECOMMENDER_INDEX_MODE"] == "server"
    for url in (enc["VITRINE_ENCODER_QDRANT_URL"], rec["VITRINE_RECOMMENDER_QDRANT_URL"]):
        qhost, qport = url.removeprefix("http://").split(":")
        assert qhost == "qdrant" and int(qport) in _ports(services["qdrant"])
    assert 6334 in _ports(services["qdrant"]), "qdrant-client prefers gRPC (6334)"
    assert rec["VITRINE_RECOMMENDER_QDRANT_COLLECTION"] == enc["VITRINE_ENCODER_QDRANT_ALIAS"]
    # ports: gRPC and metrics are where the settings say, and reachable
    assert rec["VITRINE_RECOMMENDER_GRPC_HOST"] == "0.0.0.0", "127.0.0.1 is unreachable from other containers"
    assert int(rec["VITRINE_RECOMMENDER_GRPC_PORT"]) in _ports(services["recommender"])
    assert int(rec["VITRINE_RECOMMENDER_METRICS_PORT"]) in _ports(services["recommender"])
    assert int(enc["VITRINE_ENCODER_METRICS_PORT"]) in _ports(services["encoder"])
    # the encoder only starts once the topics exist, and does not create them itself
    assert enc["VITRINE_ENCODER_CREATE_TOPICS"] == "false"
    assert services["encoder"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_kafka_init_creates_the_topics_the_services_use_with_the_code_s_configuration(
    services: dict[str, Any],
) -> None:
    (script,) = services["kafka-init"]["command"]
    created: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if "--create" not in words:
            continue
        assert "--if-not-exists" in words, "re-running the stack must not fail"
        topic = words[words.index("--topic") + 1]
        partitions = int(words[words.index("--partitions") + 1])
        configs = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--config")
        created[topic] = (partitions, configs)
    specs = {s.name: s for s in (*catalog_topics(TopicNames()), *interaction_topics(FeedbackTopics()))}
    assert set(created) == set(specs)
    for name, spec in specs.items():
        partitions, configs = created[name]
        assert configs == dict(spec.config), f"{name}: configuration differs from vitrine.stream.topics"
        if name in (TopicNames().dead_letters, FeedbackTopics().dead_letters):
            assert partitions == spec.partitions
    assert created[TopicNames().products][0] == created[TopicNames().vectors][0]
    enc = _env(services["encoder"])
    assert enc["VITRINE_ENCODER_PRODUCTS_TOPIC"] == TopicNames().products
    assert enc["VITRINE_ENCODER_DEAD_LETTER_TOPIC"] == TopicNames().dead_letters
    assert EncoderSettings.model_fields["products_topic"].default == TopicNames().products


def test_kafka_runs_kraft_with_a_valid_cluster_id_and_no_auto_created_topics(
    services: dict[str, Any],
) -> None:
    env = _env(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID is a base64 UUID"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert _mounts(services["kafka"])[env["KAFKA_LOG_DIRS"]] == "kafka-data", "the log dir is the volume"
    listener_names = {entry.split(":")[0] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    used = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    assert used == listener_names
    assert env["KAFKA_ADVERTISED_LISTENERS"].count("EXTERNAL://localhost:9092") == 1, "host producers"


def test_health_checks_exist_where_dependants_wait_for_them(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check"
    for name in (
        "kafka",
        "qdrant",
        "encoder",
        "encoder-complementary",
        "recommender",
        "prometheus",
        "grafana",
    ):
        assert "healthcheck" in services[name], name


def test_vitrine_health_checks_use_the_installed_probe_on_the_configured_ports(
    services: dict[str, Any],
) -> None:
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    assert "COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/vitrine-healthcheck" in dockerfile
    probe = runpy.run_path(str(REPO / "deploy" / "docker" / "healthcheck.py"))["build_parser"]()
    enc_cmd = services["encoder"]["healthcheck"]["test"]
    rec_cmd = services["recommender"]["healthcheck"]["test"]
    assert enc_cmd[:2] == rec_cmd[:2] == ["CMD", "vitrine-healthcheck"]
    enc_args, rec_args = probe.parse_args(enc_cmd[2:]), probe.parse_args(rec_cmd[2:])
    metrics_port = _env(services["encoder"])["VITRINE_ENCODER_METRICS_PORT"]
    assert enc_args.kind == "http" and enc_args.url == f"http://127.0.0.1:{metrics_port}/metrics"
    grpc_port = _env(services["recommender"])["VITRINE_RECOMMENDER_GRPC_PORT"]
    assert rec_args.kind == "grpc" and rec_args.target == f"127.0.0.1:{grpc_port}"
    assert rec_args.service == "vitrine.v1.Recommender"


def test_host_paths_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            if source.startswith("./"):
                path = REPO / source
                if source.startswith("./artifacts/"):
                    # a trained model: generated (git-ignored), so documented instead of present
                    assert "artifacts/models/current" in (REPO / "docker-compose.yml").read_text()
                    assert target.startswith("/models/"), name
                    continue
                assert path.exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_paths_inside_the_containers_point_at_repository_files(services: dict[str, Any]) -> None:
    """Every absolute path a service's command or environment names under a bind mount exists."""
    checked = 0
    for name, service in services.items():
        mounts = {t: s for t, s in _mounts(service).items() if s.startswith("./deploy/")}
        texts = [str(c) for c in service.get("command", []) if isinstance(service.get("command"), list)]
        texts += list(_env(service).values())
        for text in texts:
            for path in re.findall(r"(/etc/[\w./-]+)", text):
                for target, source in mounts.items():
                    if path.startswith(target + "/"):
                        assert (REPO / source / path[len(target) + 1 :]).exists(), f"{name}: {path}"
                        checked += 1
    assert checked >= 2  # prometheus --config.file, Grafana's home dashboard
