"""Real reflection clients against the real server: grpcurl `list` / `describe` / a call, and ghz with
`--call` alone (issue 17: `grpcurl describe vitrine.v1.Recommender.Similar` answered "Symbol not
found" and ghz failed the same way, because protobuf's descriptor pool does not resolve a method's
name; `vitrine.api.reflection` fixes it). The tools come from `make go-tools` (Go module proxy)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.go_tools import go_tool
from support.serving import index_only_registry

from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics

pytestmark = pytest.mark.integration

DIM = 8
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("reflection") / "shard", DIM))
    rng = np.random.default_rng(5)
    items = []
    for i in range(20):
        v = rng.normal(size=DIM).astype(np.float32)
        items.append(IndexedItem(f"p{i}", 1, v / np.linalg.norm(v), ItemPayload(title=f"item {i}")))
    index.apply(items)
    server: GrpcServer = create_grpc_server(
        index_only_registry(index, "reflection-model"), RecommenderMetrics()
    )
    server.start()
    server.set_serving(True)
    yield f"127.0.0.1:{server.port}"
    server.stop(0)
    index.close()


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def test_grpcurl_lists_the_services_and_the_methods(address: str) -> None:
    grpcurl = go_tool("grpcurl")
    services = _ok(_run(grpcurl, "-plaintext", address, "list")).split()
    assert {"vitrine.v1.Recommender", "grpc.health.v1.Health"} <= set(services)
    methods = _ok(_run(grpcurl, "-plaintext", address, "list", "vitrine.v1.Recommender")).split()
    expected = ("Batch", "Complementary", "Inspire", "Similar")
    assert sorted(methods) == [f"vitrine.v1.Recommender.{m}" for m in expected]


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        (
            "vitrine.v1.Recommender.Similar",
            "rpc Similar ( .vitrine.v1.SimilarRequest ) returns ( .vitrine.v1.RecommendResponse );",
        ),
        (
            "vitrine.v1.Recommender.Batch",
            "rpc Batch ( .vitrine.v1.BatchRequest ) returns ( .vitrine.v1.BatchResponse );",
        ),
        ("vitrine.v1.Recommender", "service Recommender {"),
        ("vitrine.v1.SimilarRequest", "message SimilarRequest {"),
        ("vitrine.v1.Product", "message Product {"),  # in catalog.proto, an import
    ],
)
def test_grpcurl_describes_methods_services_and_messages(address: str, symbol: str, expected: str) -> None:
    out = _ok(_run(go_tool("grpcurl"), "-plaintext", address, "describe", symbol))
    assert expected in out


def test_grpcurl_calls_a_method_described_only_by_reflection(address: str) -> None:
    body = json.dumps({"product_id": "p0", "limit": 3})
    out = _ok(_run(go_tool("grpcurl"), "-plaintext", "-d", body, address, "vitrine.v1.Recommender/Similar"))
    reply = json.loads(out)
    assert len(reply["items"]) == 3 and reply["model_version"] == "reflection-model", reply


def test_grpcurl_reports_an_unknown_method_as_not_found(address: str) -> None:
    # the control: the fixed pool still refuses what does not exist
    result = _run(go_tool("grpcurl"), "-plaintext", address, "describe", "vitrine.v1.Recommender.Nope")
    assert result.returncode != 0 and "not found" in (result.stdout + result.stderr).lower()


def _ghz_ok(*args: str) -> dict[str, object]:
    report = json.loads(_ok(_run(go_tool("ghz"), "--insecure", "--format", "json", *args)))
    assert report["statusCodeDistribution"] == {"OK": 20}, report.get("errorDistribution")
    return report


def test_ghz_runs_with_call_alone(address: str) -> None:
    _ghz_ok(
        "--call",
        "vitrine.v1.Recommender/Similar",
        "-d",
        '{"product_id": "p3", "limit": 5}',
        "-n",
        "20",
        address,
    )


def test_ghz_runs_with_the_protoset(address: str, tmp_path: Path) -> None:
    # ghz's own .proto parser predates proto3 `optional` (Filters.price_min), so `--proto` cannot
    # read recommender.proto; the protoset (`make protoset`) is the compiled form it takes instead
    protoset = tmp_path / "vitrine.protoset"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "protos" / "generate.py"), "--protoset", str(protoset)], check=True
    )
    call = ("--call", "vitrine.v1.Recommender/Similar", "-d", '{"product_id": "p3"}', "-n", "20")
    _ghz_ok("--protoset", str(protoset), *call, address)
