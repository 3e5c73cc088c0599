"""deploy/k8s: the manifests parse, refer to each other consistently (labels, ports, ConfigMap, Secrets,
PVC, HPA and PDB targets) and configure the services with real, valid settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vitrine.cli.main import build_parser
from vitrine.config import load_settings
from vitrine.errors import ConfigError
from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.feedback.settings import FeedbackSettings
from vitrine_services.recommender.settings import RecommenderSettings

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
SETTINGS = {"encoder": EncoderSettings, "recommender": RecommenderSettings, "feedback": FeedbackSettings}
PREFIX = {
    "encoder": "VITRINE_ENCODER_",
    "recommender": "VITRINE_RECOMMENDER_",
    "feedback": "VITRINE_FEEDBACK_",
}


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def docs(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in kustomization["resources"]:
        out += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    return out


def _of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _service_of(deployment: dict[str, Any]) -> str:
    return _container(deployment)["args"][0]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((K8S / "config.yaml").read_text())


@pytest.fixture(scope="module")
def secrets() -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d["stringData"])
        for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    }


def test_every_manifest_parses_and_is_named_once(
    docs: list[dict[str, Any]], kustomization: dict[str, Any]
) -> None:
    assert {"Namespace", "ServiceAccount", "PersistentVolumeClaim", "Deployment", "Service"} <= {
        d["kind"] for d in docs
    }
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= {d["kind"] for d in docs}
    seen = set()
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"], d
        key = (d["kind"], d["metadata"]["name"])
        assert key not in seen, f"{key} defined twice"
        seen.add(key)
    assert _of(docs, "Namespace").keys() == {kustomization["namespace"]}
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "vitrine-config" and generator["files"] == ["config.yaml"]


def test_deployments_select_their_own_pods_and_run_the_cli(docs: list[dict[str, Any]], kustomization) -> None:
    deployments = _of(docs, "Deployment")
    assert {_service_of(d) for d in deployments.values()} == {"encoder", "recommender", "feedback"}
    image_names = {i["name"] for i in kustomization["images"]}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        container = _container(deployment)
        assert container["image"] in image_names, f"{name}: image not set by kustomization images"
        command = _service_of(deployment)
        assert build_parser().parse_args(container["args"]).command == command
        assert spec["template"]["spec"]["serviceAccountName"] in _of(docs, "ServiceAccount")


def test_config_sections_are_valid_settings(config: dict[str, Any]) -> None:
    assert set(config) == {"encoder", "recommender", "feedback"}
    path = K8S / "config.yaml"
    # the secrets the Deployments inject as environment variables, here as placeholders
    encoder = load_settings(EncoderSettings, path, "encoder", kafka_sasl_password="placeholder")
    assert encoder.index_mode == "server" and encoder.create_topics is False
    recommender = load_settings(RecommenderSettings, path, "recommender", kafka_sasl_password="placeholder")
    assert recommender.index_mode == "server"
    assert recommender.qdrant_collection == encoder.qdrant_alias, "readers use the alias writers move"
    assert recommender.grpc_host == "0.0.0.0"
    feedback = load_settings(FeedbackSettings, path, "feedback", kafka_sasl_password="placeholder")
    assert feedback.create_topics is False
    # the recommenders record impressions where the feedback service reads them, on the same brokers
    assert recommender.record_impressions and recommender.interactions_topic == feedback.interactions_topic
    assert recommender.kafka_bootstrap_servers == feedback.kafka_bootstrap_servers
    assert encoder.kafka_bootstrap_servers == feedback.kafka_bootstrap_servers


@pytest.mark.parametrize("service", ["encoder", "recommender", "feedback"])
def test_sasl_without_its_secret_fails_at_start(config: dict[str, Any], service: str) -> None:
    with pytest.raises(ConfigError, match=f"{PREFIX[service]}KAFKA_SASL_PASSWORD"):
        load_settings(SETTINGS[service], K8S / "config.yaml", service)


def test_environment_variables_are_settings_fields_and_references_resolve(
    docs: list[dict[str, Any]], secrets: dict[str, set[str]]
) -> None:
    for name, deployment in _of(docs, "Deployment").items():
        service = _service_of(deployment)
        container = _container(deployment)
        for var in container["env"]:
            if var["name"] == "VITRINE_CONFIG":
                continue
            prefix = PREFIX[service]
            assert var["name"].startswith(prefix), f"{name}: {var['name']} is not for the {service}"
            assert var["name"][len(prefix) :].lower() in SETTINGS[service].model_fields, var["name"]
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in secrets[ref["name"]], f"{name}: secret {ref['name']}/{ref['key']}"
        secret_values = [v["name"] for v in container["env"] if "valueFrom" in v]
        assert all(re.search(r"(PASSWORD|TOKENS|API_KEY)$", v) for v in secret_values)


def _mount_of(mounts: dict[str, dict[str, Any]], path: str) -> dict[str, Any]:
    matches = [m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")]
    assert matches, f"nothing mounted at {path}"
    return matches[0]


def test_volumes_mounts_and_config_paths_line_up(
    docs: list[dict[str, Any]], config: dict[str, Any], secrets: dict[str, set[str]]
) -> None:
    claims = _of(docs, "PersistentVolumeClaim")
    for name, deployment in _of(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert {m["name"] for m in mounts.values()} == set(volumes), f"{name}: mounted vs declared volumes"
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] == "vitrine-config"
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets

        env = {v["name"]: v.get("value") for v in container["env"]}
        config_path = env["VITRINE_CONFIG"]
        assert volumes[_mount_of(mounts, config_path)["name"]].get("configMap"), (
            "VITRINE_CONFIG is in the ConfigMap"
        )
        assert config_path.endswith("/config.yaml")
        section = config[_service_of(deployment)]
        if "model_dir" in SETTINGS[_service_of(deployment)].model_fields:  # the feedback service has none
            assert volumes[_mount_of(mounts, section["model_dir"])["name"]].get("persistentVolumeClaim")
        if "kafka_ssl_cafile" in section:
            mount = _mount_of(mounts, section["kafka_ssl_cafile"])
            secret = volumes[mount["name"]]["secret"]["secretName"]
            assert Path(section["kafka_ssl_cafile"]).name in secrets[secret]
        assert all(m.get("readOnly") for p, m in mounts.items() if p != "/tmp"), (
            f"{name}: only /tmp is writable"
        )


def test_ports_probes_and_metrics_annotations_match_the_settings(
    docs: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    for name, deployment in _of(docs, "Deployment").items():
        service = _service_of(deployment)
        section = config[service]
        container = _container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == section["metrics_port"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == section["metrics_port"]
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container[probe_name]
            if "grpc" in probe:
                assert probe["grpc"]["port"] == section["grpc_port"] == ports["grpc"], f"{name} {probe_name}"
            else:
                port = probe["httpGet"]["port"]
                assert port in ports or port in ports.values(), f"{name} {probe_name}"
        if service == "recommender":
            assert container["readinessProbe"]["grpc"]["service"] == "vitrine.v1.Recommender"


def test_services_route_to_named_container_ports(docs: list[dict[str, Any]]) -> None:
    deployments = _of(docs, "Deployment")
    for name, service in _of(docs, "Service").items():
        selected = [
            d
            for d in deployments.values()
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {name} selects {len(selected)} Deployments"
        port_names = {p["name"] for p in _container(selected[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"Service {name}: no container port {port['targetPort']}"


def test_autoscalers_and_disruption_budgets_target_real_deployments(docs: list[dict[str, Any]]) -> None:
    deployments = _of(docs, "Deployment")
    hpas = _of(docs, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(deployments)
    for hpa in hpas.values():
        spec = hpa["spec"]
        target = deployments[spec["scaleTargetRef"]["name"]]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= spec["minReplicas"] <= target["spec"]["replicas"] <= spec["maxReplicas"]
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu", "HPA on CPU"
        assert _container(target)["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
    for name, pdb in _of(docs, "PodDisruptionBudget").items():
        selected = [
            d
            for d in deployments.values()
            if pdb["spec"]["selector"]["matchLabels"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, name
        hpa = next(
            h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"] == selected[0]["metadata"]["name"]
        )
        assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"], f"{name} would allow a full outage"


def test_pods_are_locked_down_and_stop_gracefully(docs: list[dict[str, Any]], config: dict[str, Any]) -> None:
    for name, deployment in _of(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        security = _container(deployment)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "memory" in _container(deployment)["resources"]["limits"], name
        if _service_of(deployment) == "recommender":
            pause = int(_container(deployment)["lifecycle"]["preStop"]["exec"]["command"][1])
            grace = config["recommender"]["shutdown_grace_s"]
            assert pod["terminationGracePeriodSeconds"] > pause + grace, "SIGKILL before the drain ends"
