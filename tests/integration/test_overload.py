"""The recommender past saturation, over real loopback gRPC on a real Qdrant Edge index: calls beyond
the running + queued bound are refused at once with RESOURCE_EXHAUSTED, admitted ones succeed, the
server stays healthy; responses above the size bound and calls without a deadline are bounded too.
(`bench/overload.py` measures latencies past saturation with ghz; this is the CI-sized behaviour.)"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.serving import index_only_registry

from vitrine.api.overload import OverloadLimits
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.v1 import recommender_pb2 as pb
from vitrine.v1 import recommender_pb2_grpc

pytestmark = pytest.mark.integration
DIM = 16


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeIndex]:
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("overload") / "shard", DIM))
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.apply(
        [
            IndexedItem(f"p{i}", 1, v, ItemPayload(title=f"item {i} " + "x" * 200))
            for i, v in enumerate(vectors)
        ]
    )
    index.optimize()
    yield index
    index.close()


def serve(index: EdgeIndex, limits: OverloadLimits) -> GrpcServer:
    server = create_grpc_server(
        index_only_registry(index, "m", "A"),
        RecommenderMetrics(),
        workers=limits.max_concurrent_rpcs,
        overload=limits,
    )
    server.start()
    server.set_serving(True)
    return server


def heavy_batch() -> bytes:
    """32 Similar of 500 items each: tens of milliseconds of server work, ~250 KB of response."""
    requests = [
        pb.RecommendRequest(similar=pb.SimilarRequest(product_id=f"p{i}", limit=500)) for i in range(32)
    ]
    return pb.BatchRequest(requests=requests).SerializeToString()


def test_calls_past_running_plus_queued_are_refused_at_once_and_the_admitted_ones_succeed(
    index: EdgeIndex,
) -> None:
    limits = OverloadLimits(max_concurrent_rpcs=2, max_queued_rpcs=2, max_response_bytes=8 * 1024 * 1024)
    server = serve(index, limits)
    target = f"127.0.0.1:{server.port}"
    payload = heavy_batch()
    results: list[tuple[grpc.StatusCode, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary("/vitrine.v1.Recommender/Batch")
            grpc.channel_ready_future(channel).result(timeout=30)
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    call(payload, timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                with lock:
                    results.append((code, time.perf_counter() - started))

    threads = [threading.Thread(target=client) for _ in range(24)]  # 6x what is admitted
    try:
        for t in threads:
            t.start()
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(60)
        codes = Counter(code for code, _ in results)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0 and codes[grpc.StatusCode.OK] > 0, codes
        admitted = [s for code, s in results if code == grpc.StatusCode.OK]
        refused = [s for code, s in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        # refused before they queue: faster than a call that was served
        assert statistics.median(refused) < statistics.median(admitted), (
            statistics.median(refused),
            statistics.median(admitted),
        )
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reply = recommender_pb2_grpc.RecommenderStub(channel).Similar(
                pb.SimilarRequest(product_id="p1", limit=5), timeout=5
            )
            assert len(reply.items) == 5
        print(f"past saturation: {dict(codes)}; median admitted {statistics.median(admitted) * 1000:.0f} ms")
    finally:
        stop.set()
        server.stop(0)


def test_a_response_above_the_size_bound_is_resource_exhausted_not_built(index: EdgeIndex) -> None:
    server = serve(index, OverloadLimits(2, 2, max_response_bytes=64 * 1024))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            assert len(stub.Similar(pb.SimilarRequest(product_id="p1", limit=20), timeout=10).items) == 20
            with pytest.raises(grpc.RpcError) as err:
                stub.Similar(pb.SimilarRequest(product_id="p1", limit=500), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "ask for fewer items" in (err.value.details() or "")
            with pytest.raises(grpc.RpcError) as err:
                stub.Batch(pb.BatchRequest.FromString(heavy_batch()), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at request #1 of 32" in (err.value.details() or "")  # stopped at once, not built
    finally:
        server.stop(0)


def test_a_call_without_a_deadline_gets_the_server_s_default(index: EdgeIndex) -> None:
    server = serve(index, OverloadLimits(2, 2, default_deadline_s=1e-6))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            batch = pb.BatchRequest.FromString(heavy_batch())
            with pytest.raises(grpc.RpcError) as err:
                stub.Batch(batch)  # no deadline from the client: the server's applies
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(stub.Batch(batch, timeout=30).results) == 32  # the client's deadline wins
    finally:
        server.stop(0)
