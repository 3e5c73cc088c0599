"""The Prometheus configs, the alert rules and the Grafana dashboard refer to metrics, labels, jobs,
files and runbook sections that exist. (tests/integration/test_prometheus.py runs them for real.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.feedback.settings import FeedbackSettings
from vitrine_services.recommender.settings import RecommenderSettings

PROM = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
GRAFANA = PROM.parent / "grafana"
JOBS = {"vitrine-encoder", "vitrine-recommender", "vitrine-feedback"}


def _rules(repo: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((repo / "deploy" / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "vitrine.json").read_text())


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in dashboard["panels"] for t in p.get("targets", [])]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in heads}


# -- scrape configs ------------------------------------------------------------------------------


def test_compose_scrape_config_targets_the_services_on_their_metrics_ports(repo: Path) -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) >= JOBS
    # every encoder (the live one and one per further model, e.g. encoder-complementary) is scraped
    encoders = [name for name, s in compose.items() if s.get("command") == ["encoder"]]
    assert "encoder-complementary" in encoders, "compose serves the complementary model too"
    expected = {
        "vitrine-encoder": (
            encoders,
            {compose[e]["environment"]["VITRINE_ENCODER_METRICS_PORT"] for e in encoders},
        ),
        "vitrine-recommender": (
            ["recommender"],
            {compose["recommender"]["environment"]["VITRINE_RECOMMENDER_METRICS_PORT"]},
        ),
        "vitrine-feedback": (
            ["feedback"],
            {compose["feedback"]["environment"]["VITRINE_FEEDBACK_METRICS_PORT"]},
        ),
    }
    for job, (names, ports) in expected.items():
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == names and sd["type"] == "A"
        assert {str(sd["port"])} == {str(p) for p in ports}, (
            f"{job} scrapes {sd['port']}, services on {ports}"
        )
    assert EncoderSettings.model_fields["metrics_port"].default == 9101
    assert RecommenderSettings.model_fields["metrics_port"].default == 9102
    assert FeedbackSettings.model_fields["metrics_port"].default == 9103


def test_kubernetes_scrape_config_keeps_the_job_names_and_selects_the_manifests_pods(repo: Path) -> None:
    config = yaml.safe_load((PROM / "prometheus-kubernetes.yml").read_text())
    compose_config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == compose_config["rule_files"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == JOBS
    manifests = [
        d
        for f in ("encoder.yaml", "recommender.yaml", "feedback.yaml")
        for d in yaml.safe_load_all((repo / "deploy/k8s" / f).read_text())
    ]
    pod_labels = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]: d["spec"]["template"]
        for d in manifests
        if d["kind"] == "Deployment"
    }
    for job, scrape in jobs.items():
        (sd,) = scrape["kubernetes_sd_configs"]
        assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["vitrine"]
        keep = {
            tuple(r["source_labels"]): r["regex"]
            for r in scrape["relabel_configs"]
            if r.get("action") == "keep"
        }
        name = keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
        assert name == job and name in pod_labels, f"{job} selects pods labelled {name}: no such Deployment"
        port_names = {p["name"] for c in pod_labels[name]["spec"]["containers"] for p in c["ports"]}
        assert keep[("__meta_kubernetes_pod_container_port_name",)] in port_names


def test_rule_files_glob_finds_the_rules() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    found = [p for pattern in config["rule_files"] for p in PROM.glob(pattern)]
    assert found and all(p.suffix == ".yml" for p in found)


# -- alert rules -----------------------------------------------------------------------------------


def test_alert_rules_use_real_metrics_and_labels(repo: Path, metric_catalog) -> None:
    problems = {}
    for rule in _rules(repo):
        if rule["expr"].startswith("up{"):
            continue  # Prometheus' own `up` series; its job matchers are checked below
        if found := metric_catalog.check_expr(rule["expr"]):
            problems[rule["alert"]] = found
    assert not problems


def test_alert_rules_are_complete_and_link_to_their_runbook_section(repo: Path) -> None:
    rules = _rules(repo)
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    anchors = _anchors((repo / "docs" / "OPERATIONS.md").read_text())
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert re.fullmatch(r"\d+m", rule["for"]), f"{rule['alert']}: give alerts a `for` to ride out blips"
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/OPERATIONS.md" and anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/OPERATIONS.md has no section for {rule['alert']}"
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in JOBS, f"{rule['alert']} selects job {job!r}, which no scrape config defines"


def test_the_issue_s_alerts_exist(repo: Path) -> None:
    exprs = {r["alert"]: r["expr"] for r in _rules(repo)}
    wanted = {
        "consumer lag growing": ("VitrineEncoderConsumerLagGrowing", "deriv(vitrine_encoder_consumer_lag"),
        "DLQ rate": ("VitrineEncoderDeadLetters", "vitrine_encoder_dead_lettered_total"),
        "error rate": ("VitrineRecommenderErrorRate", "vitrine_recommender_requests_total{code=~"),
        "p99 latency": ("VitrineRecommenderLatencyP99", "histogram_quantile(0.99"),
        "freshness": ("VitrineEncoderFreshnessSlow", "vitrine_encoder_event_to_written_seconds_bucket"),
    }
    for what, (alert, fragment) in wanted.items():
        assert alert in exprs and fragment in exprs[alert], what


def test_every_alert_has_a_promtool_case_where_it_fires(repo: Path) -> None:
    suite = yaml.safe_load((PROM / "tests" / "vitrine_test.yml").read_text())
    assert suite["rule_files"] == ["../rules/vitrine.yml"]
    firing = {
        case["alertname"]
        for test in suite["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {r["alert"] for r in _rules(repo)} == firing


# -- Grafana -----------------------------------------------------------------------------------------


def test_dashboard_queries_use_real_metrics_labels_and_defined_variables(metric_catalog) -> None:
    dashboard = _dashboard()
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    problems: dict[str, list[str]] = {}
    for title, target in _targets(dashboard):
        expr = target["expr"]
        found = metric_catalog.check_expr(expr)
        used = set(re.findall(r"\$\{?([a-zA-Z_]+)", expr)) - {"__rate_interval"}
        found += [f"undefined variable ${v}" for v in sorted(used - variables)]
        if target["datasource"] != {"type": "prometheus", "uid": "${datasource}"}:
            found.append("not on the dashboard's data-source variable")
        if found:
            problems[f"{title}: {expr}"] = found
    assert not problems


def test_dashboard_layout_is_valid() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["name"] == "datasource" and datasource["query"] == "prometheus"


def test_dashboard_covers_throughput_lag_freshness_latency_and_errors() -> None:
    exprs = [t["expr"] for _, t in _targets(_dashboard())]

    def has(*fragments: str) -> bool:
        return any(all(f in e for f in fragments) for e in exprs)

    assert has("rate(vitrine_encoder_events_consumed_total"), "encoder throughput"
    assert has("sum by (method, variant) (rate(vitrine_recommender_requests_total"), "request throughput"
    assert has("vitrine_encoder_consumer_lag"), "encoder lag"
    assert has("vitrine_recommender_feed_lag"), "replica feed lag"
    assert has("vitrine_encoder_event_to_written_seconds_bucket"), "freshness"
    assert has("vitrine_recommender_event_to_indexed_seconds_bucket"), "replica freshness"
    for quantile in ("0.5", "0.95", "0.99"):
        assert has(f"histogram_quantile({quantile}, sum by (le, method, variant)", "request_seconds_bucket")
    assert has('code=~"INTERNAL', "sum by (method, variant)"), "server error ratio per method and variant"
    assert has("vitrine_encoder_dead_lettered_total"), "dead letters"
    assert has("vitrine_feedback_lift", 'bound="lower"'), "experiment lift with its interval"
    assert has("vitrine_feedback_arm_rate", 'metric="ctr"'), "CTR per variant"
    assert has("vitrine_feedback_consumer_lag"), "feedback lag"
    assert has("vitrine_recommender_impressions_dropped_total"), "impressions dropped"


def test_grafana_provisioning_matches_the_compose_mounts(repo: Path) -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    host, _, port = source["url"].removeprefix("http://").partition(":")
    assert host in compose and any(p.split(":")[-1] == port for p in compose[host]["ports"])
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/vitrine.yml").read_text())["providers"]
    mounts = dict(v.split(":")[1::-1] for v in compose["grafana"]["volumes"] if v.startswith("./"))
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


@pytest.mark.parametrize(
    "path", ["provisioning/datasources/prometheus.yml", "provisioning/dashboards/vitrine.yml"]
)
def test_grafana_provisioning_files_are_version_1(path: str) -> None:
    assert yaml.safe_load((GRAFANA / path).read_text())["apiVersion"] == 1


def test_the_expression_checker_catches_mistakes(metric_catalog) -> None:
    # the checks above are only as good as this reader of PromQL
    good = (
        "histogram_quantile(0.99, sum by (le, method) (rate(vitrine_recommender_request_seconds_bucket[5m])))"
    )
    assert metric_catalog.check_expr(good) == []
    assert metric_catalog.check_expr("rate(vitrine_recommender_request_total[1m])") == [
        "unknown series vitrine_recommender_request_total"
    ]
    assert metric_catalog.check_expr('sum(vitrine_encoder_consumer_lag{reason="x"})') == [
        "vitrine_encoder_consumer_lag has no label 'reason'"
    ]
    assert metric_catalog.check_expr("sum by (code) (vitrine_encoder_consumer_lag)") == [
        "groups by 'code', which none of ['vitrine_encoder_consumer_lag'] has"
    ]
    assert metric_catalog.check_expr("up") == ["uses no vitrine metric"]
