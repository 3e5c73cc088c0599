"""The Recommender gRPC API over real loopback gRPC, on a real Qdrant Edge index."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.serving import index_only_registry

from vitrine.api.client import Filters, InvalidRequest, NotFound, RecommenderClient, Unavailable
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.stream.broker import free_port
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc

pytestmark = pytest.mark.integration
DIM = 8


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeIndex]:
    # creating a shard with its payload indexes takes ~2 s: one per module, read-only in these tests
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("grpc") / "shard", DIM))
    rng = np.random.default_rng(3)
    base = rng.normal(size=DIM).astype(np.float32)
    items = []
    for i in range(30):
        v = base + 0.1 * i * rng.normal(size=DIM).astype(np.float32)
        payload = ItemPayload(title=f"item {i}", in_stock=i != 1, dedup_key="dup" if i in (0, 2) else f"k{i}")
        items.append(IndexedItem(f"p{i}", 1, v / np.linalg.norm(v), payload))
    index.apply(items)
    yield index
    index.close()


@pytest.fixture
def server(index: EdgeIndex) -> Iterator[tuple[GrpcServer, RecommenderMetrics, EdgeIndex]]:
    metrics = RecommenderMetrics()
    grpc_server = create_grpc_server(index_only_registry(index, "test-model", "A"), metrics)
    grpc_server.start()
    grpc_server.set_serving(True)
    yield grpc_server, metrics, index
    grpc_server.stop(0)


def _stub(server: GrpcServer) -> recommender_pb2_grpc.RecommenderStub:
    return recommender_pb2_grpc.RecommenderStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def test_similar_excludes_the_anchor_its_duplicates_and_out_of_stock_items(server) -> None:
    grpc_server, _, _ = server
    with RecommenderClient(f"127.0.0.1:{grpc_server.port}") as client:
        result = client.similar("p0", limit=50)
    ids = set(result.ids)
    assert "p0" not in ids and "p2" not in ids  # the anchor and its duplicate (same title + brand key)
    assert "p1" not in ids  # out of stock
    assert len(ids) == 27
    assert result.model_version == "test-model" and result.variant == "A"
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)
    assert all(i.reason == "similar to p0" and i.title.startswith("item ") for i in result.items)


def test_out_of_stock_items_are_returned_when_requested(server) -> None:
    grpc_server, _, _ = server
    with RecommenderClient(f"127.0.0.1:{grpc_server.port}") as client:
        assert "p1" in client.similar("p0", limit=50, include_out_of_stock=True).ids


def test_include_out_of_stock_is_kept_when_filters_are_given_too(server) -> None:
    # issue 17: client.similar(id, include_out_of_stock=True, filters=Filters(...)) dropped the flag
    grpc_server, _, _ = server
    with RecommenderClient(f"127.0.0.1:{grpc_server.port}") as client:
        ids = client.similar("p0", 50, True, filters=Filters(exclude_product_ids=["p3"])).ids
        assert "p1" in ids and "p3" not in ids
        flagged = Filters(include_out_of_stock=True, exclude_product_ids=["p3"])
        assert "p1" in client.similar("p0", limit=50, filters=flagged).ids


def test_the_client_raises_typed_errors_that_are_still_rpc_errors(server) -> None:
    grpc_server, _, _ = server
    with RecommenderClient(f"127.0.0.1:{grpc_server.port}") as client:
        with pytest.raises(NotFound) as missing:
            client.similar("nope")
        with pytest.raises(InvalidRequest) as invalid:
            client.similar("p0", limit=501)
    assert isinstance(missing.value, grpc.RpcError) and missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in missing.value.details() and str(missing.value).startswith("NOT_FOUND: ")
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in invalid.value.details()
    unreachable = RecommenderClient(f"127.0.0.1:{free_port()}", timeout_s=0.3, retries=1)
    with unreachable, pytest.raises(Unavailable):
        unreachable.similar("p0")


def test_default_limit_is_ten(server) -> None:
    grpc_server, _, _ = server
    reply = _stub(grpc_server).Similar(recommender_pb2.SimilarRequest(product_id="p3"), timeout=5)
    assert len(reply.items) == 10


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (
            recommender_pb2.SimilarRequest(product_id="", limit=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "product_id",
        ),
        (
            recommender_pb2.SimilarRequest(product_id="p0", limit=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
        ),
        (
            recommender_pb2.SimilarRequest(product_id="p0", limit=501),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
        ),
        (
            recommender_pb2.SimilarRequest(product_id="x" * 300, limit=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "longer",
        ),
        (recommender_pb2.SimilarRequest(product_id="nope", limit=5), grpc.StatusCode.NOT_FOUND, "nope"),
    ],
)
def test_bad_requests_get_clear_status_codes(server, request_, code, message) -> None:
    grpc_server, metrics, _ = server
    with pytest.raises(grpc.RpcError) as err:
        _stub(grpc_server).Similar(request_, timeout=5)
    assert err.value.code() == code
    assert message in err.value.details()
    assert metrics.requests.labels("Similar", code.name, "A")._value.get() == 1


def test_requests_are_counted_by_method_code_and_variant(server) -> None:
    grpc_server, metrics, _ = server
    stub = _stub(grpc_server)
    for _ in range(3):
        stub.Similar(recommender_pb2.SimilarRequest(product_id="p5", limit=3), timeout=5)
    assert metrics.requests.labels("Similar", "OK", "A")._value.get() == 3
    assert metrics.latency.labels("Similar", "A")._sum.get() > 0


def test_health_reports_serving_and_reflection_lists_the_service(server) -> None:
    grpc_server, _, _ = server
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="vitrine.v1.Recommender"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    grpc_server.set_serving(False)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    services = {s.name for r in responses for s in r.list_services_response.service}
    assert {"vitrine.v1.Recommender", "grpc.health.v1.Health"} <= services


def test_a_second_server_shares_the_port_and_the_connections(index: EdgeIndex) -> None:
    """The process-per-core layout (docs/OPERATIONS.md): servers bound to one port with SO_REUSEPORT,
    the kernel spreading new connections over them. Without SO_REUSEPORT the second bind fails
    (gRPC raises; control run: with reuse_port=False this test fails so, which is the default: a
    taken port is an error unless the layout asks for sharing, VITRINE_RECOMMENDER_GRPC_REUSE_PORT)."""
    first_metrics, second_metrics = RecommenderMetrics(), RecommenderMetrics()
    first = create_grpc_server(index_only_registry(index, "m", "A"), first_metrics, reuse_port=True)
    second = create_grpc_server(
        index_only_registry(index, "m", "A"),
        second_metrics,
        address=f"127.0.0.1:{first.port}",
        reuse_port=True,
    )
    assert second.port == first.port
    for s in (first, second):
        s.start()
    try:
        for _ in range(40):  # a new connection each time: the kernel picks a listener per connection
            # (a channel of its own subchannel pool: channels of one process otherwise share one)
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(f"127.0.0.1:{first.port}", options=options) as channel:
                stub = recommender_pb2_grpc.RecommenderStub(channel)
                assert len(stub.Similar(recommender_pb2.SimilarRequest(product_id="p3"), timeout=5).items)
    finally:
        for s in (first, second):
            s.stop(0)
    labels = {"method": "Similar", "code": "OK", "variant": "A"}
    served = [
        m.registry.get_sample_value("vitrine_recommender_requests_total", labels) or 0
        for m in (first_metrics, second_metrics)
    ]
    assert sum(served) == 40
    assert min(served) > 0, f"every connection went to one server: {served}"
