"""A real Prometheus (Debian's `prometheus` package) scrapes real vitrine metrics endpoints.

The recommender side is the real gRPC server on a real Qdrant Edge index, so its request series come
from real calls; the encoder side is a real EncoderMetrics registry on its /metrics server. The scrape
configuration is deploy/prometheus/prometheus.yml with its DNS discovery swapped for the test ports,
and the rules are deploy/prometheus/rules, so job names, rules and dashboard queries are the shipped
ones. promtool checks the rules and the config and runs the rules' unit tests.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from support.serving import index_only_registry

from vitrine.api.client import RecommenderClient
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import EncoderMetrics, MetricsServer, RecommenderMetrics, serve_metrics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "vitrine.json"
INSTALL_HINT = "install Debian's prometheus package: `make prometheus` (apt-get install prometheus)"
DIM = 8


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed; {INSTALL_HINT}", pytrace=False)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=120)


# -- promtool ----------------------------------------------------------------------------------------


def test_promtool_accepts_the_alert_rules() -> None:
    rules = sorted(str(p) for p in (PROM_DIR / "rules").glob("*.yml"))
    assert rules, "no rule files in deploy/prometheus/rules"
    result = _run(_binary("promtool"), "check", "rules", *rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_compose_scrape_config() -> None:
    # deploy/prometheus/prometheus-kubernetes.yml is checked structurally in tests/unit/deploy: Debian
    # builds Prometheus without Kubernetes service discovery, so its promtool rejects that section.
    result = _run(_binary("promtool"), "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = _run(_binary("promtool"), "test", "rules", str(PROM_DIR / "tests" / "vitrine_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- a real Prometheus scraping real endpoints --------------------------------------------------------


@dataclass
class Targets:
    grpc: GrpcServer
    recommender: MetricsServer
    encoder: MetricsServer
    encoder_metrics: EncoderMetrics


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("prom") / "shard", DIM))
    rng = np.random.default_rng(11)
    items = []
    for i in range(20):
        v = rng.normal(size=DIM).astype(np.float32)
        items.append(IndexedItem(f"p{i}", 1, v / np.linalg.norm(v), ItemPayload(title=f"item {i}")))
    index.apply(items)
    recommender_metrics = RecommenderMetrics()
    grpc_server = create_grpc_server(index_only_registry(index, "prom-model", "A"), recommender_metrics)
    grpc_server.start()
    grpc_server.set_serving(True)
    recommender_metrics.items.labels("prom-model").set(index.count())

    encoder_metrics = EncoderMetrics()
    encoder_metrics.consumed.inc(40)
    encoder_metrics.encoded.inc(38)
    encoder_metrics.written.labels("upsert").inc(37)
    encoder_metrics.dead_lettered.labels("invalid_price").inc(2)
    encoder_metrics.lag.labels("catalog.products", "0").set(3)
    for seconds in (0.02, 0.03, 0.2):
        encoder_metrics.freshness.observe(seconds)

    recommender_http = serve_metrics(recommender_metrics.registry, 0, addr="127.0.0.1")
    encoder_http = serve_metrics(encoder_metrics.registry, 0, addr="127.0.0.1")
    yield Targets(grpc_server, recommender_http, encoder_http, encoder_metrics)
    encoder_http.close()
    recommender_http.close()
    grpc_server.stop(0)
    index.close()


def _scrape_config(targets: Targets, tmp: Path) -> Path:
    """The shipped config, with each DNS-discovered job pointed at a test endpoint and a 1 s cadence."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    ports = {"vitrine-encoder": targets.encoder.port, "vitrine-recommender": targets.recommender.port}
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in ports:
            continue  # Prometheus scraping itself: not what this test is about
        job.pop("dns_sd_configs")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
        jobs.append(job)
    assert {j["job_name"] for j in jobs} == set(ports), "the shipped config lost a vitrine job"
    config["scrape_configs"] = jobs
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROM_DIR / pattern) for pattern in config["rule_files"]]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Prometheus:
    def __init__(self, process: subprocess.Popen[str], url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.api("query", query=expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        return body["data"]["result"]

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what}; Prometheus log tail:\n" + "\n".join(self.log[-20:]))


@pytest.fixture(scope="module")
def prometheus(targets: Targets, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    config = _scrape_config(targets, tmp)
    process = subprocess.Popen(
        [
            _binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            "--web.listen-address=127.0.0.1:0",  # the OS picks the port; Prometheus logs it
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    address: list[str] = []
    found = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip())
            match = re.search(r'msg="Listening on" address=(\S+)', line)
            if match and not address:
                address.append(match.group(1))
                found.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not found.wait(30):
            pytest.fail("Prometheus did not start listening:\n" + "\n".join(log[-30:]), pytrace=False)
        server = Prometheus(process, f"http://{address[0]}", log)

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        server.wait_for("/-/ready", ready)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _value(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else float("nan")


def test_prometheus_scrapes_the_vitrine_series(targets: Targets, prometheus: Prometheus) -> None:
    with RecommenderClient(f"127.0.0.1:{targets.grpc.port}", timeout_s=5, retries=0) as client:
        for _ in range(5):
            assert len(client.similar("p0", limit=3).ids) == 3
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                client.similar("unknown-product", limit=3)

    ok = 'vitrine_recommender_requests_total{job="vitrine-recommender", method="Similar", code="OK", variant="A"}'
    prometheus.wait_for("5 OK Similar calls to be scraped", lambda: _value(prometheus.query(ok)) == 5)
    not_found = 'vitrine_recommender_requests_total{method="Similar", code="NOT_FOUND", variant="A"}'
    assert _value(prometheus.query(not_found)) == 2

    def up() -> dict[str, float]:
        return {r["metric"]["job"]: _value([r]) for r in prometheus.query('up{job=~"vitrine-.*"}')}

    # each job is scraped on its own schedule: wait for both before comparing
    prometheus.wait_for("both jobs scraped", lambda: len(up()) == 2)
    assert up() == {"vitrine-encoder": 1.0, "vitrine-recommender": 1.0}
    targets_api = prometheus.api("targets")["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets_api} == {
        "vitrine-encoder": "up",
        "vitrine-recommender": "up",
    }

    latency = prometheus.query('vitrine_recommender_request_seconds_count{method="Similar", variant="A"}')
    assert _value(latency) == 7
    buckets = prometheus.query('vitrine_recommender_request_seconds_bucket{method="Similar", le="+Inf"}')
    assert _value(buckets) == 7
    items = prometheus.query('vitrine_recommender_index_items{model="prom-model"}')
    assert _value(items) == 20

    assert _value(prometheus.query('vitrine_encoder_events_consumed_total{job="vitrine-encoder"}')) == 40
    lag = prometheus.query('vitrine_encoder_consumer_lag{topic="catalog.products", partition="0"}')
    assert _value(lag) == 3
    dead = prometheus.query('vitrine_encoder_dead_lettered_total{reason="invalid_price"}')
    assert _value(dead) == 2
    assert _value(prometheus.query("vitrine_encoder_event_to_written_seconds_count")) == 3


def test_prometheus_loads_and_evaluates_every_alert_rule(prometheus: Prometheus) -> None:
    shipped = {
        rule["alert"]
        for path in (PROM_DIR / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }

    def rules() -> dict[str, dict[str, Any]]:
        groups = prometheus.api("rules")["data"]["groups"]
        return {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}

    prometheus.wait_for(
        "every rule to be evaluated",
        lambda: set(rules()) == shipped and all(r["health"] == "ok" for r in rules().values()),
    )
    loaded = rules()
    assert set(loaded) == shipped
    bad = {name: r.get("lastError") for name, r in loaded.items() if r["health"] != "ok"}
    assert not bad, bad


def _grafana_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _as_grafana_would_send(expr: str) -> str:
    # Grafana replaces its variables before querying: "All" is the regex .*, $__rate_interval a window
    return expr.replace("$__rate_interval", "1m").replace("$method", ".*").replace("$variant", ".*")


def test_every_dashboard_query_runs_and_the_request_panels_show_data(
    targets: Targets, prometheus: Prometheus
) -> None:
    queries = _grafana_queries()
    assert len(queries) > 20
    for title, expr in queries:
        body = prometheus.api("query", query=_as_grafana_would_send(expr))
        assert body["status"] == "success", f"panel {title!r}: {expr}: {body.get('error')}"

    with RecommenderClient(f"127.0.0.1:{targets.grpc.port}", timeout_s=5) as client:
        for _ in range(20):
            client.similar("p1", limit=2)
    by_title = dict(queries)
    throughput = _as_grafana_would_send(by_title["Requests / s by method and variant"])
    prometheus.wait_for(
        "the throughput panel to show Similar/A",
        lambda: any(
            r["metric"] == {"method": "Similar", "variant": "A"} and float(r["value"][1]) > 0
            for r in prometheus.query(throughput)
        ),
    )
    p99 = prometheus.query(_as_grafana_would_send(by_title["p99 latency"]))
    assert p99 and 0 < float(p99[0]["value"][1]) < 5


def test_the_image_health_check_reads_a_metrics_endpoint(targets: Targets) -> None:
    probe = [sys.executable, str(REPO / "deploy" / "docker" / "healthcheck.py"), "http"]
    ok = _run(*probe, f"http://127.0.0.1:{targets.encoder.port}/metrics")
    assert ok.returncode == 0, ok.stderr
    with socket.socket() as s:  # a port with nothing listening: bound, never listened on
        s.bind(("127.0.0.1", 0))
        closed = _run(*probe, f"http://127.0.0.1:{s.getsockname()[1]}/metrics")
    assert closed.returncode == 1 and "unhealthy" in closed.stderr
