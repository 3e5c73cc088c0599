"""Every call is accounted for on the server, whatever happens to its deadline (issue 17: of 20 calls
with a 1 ms deadline the server counted 2 DEADLINE_EXCEEDED, 4 OK and nothing for 14).

- A call whose deadline passes while it waits for a handler thread never reaches the servicer: it is
  counted on arrival (`requests_started_total`), so started - handled shows it.
- A call whose handler finishes after the deadline is DEADLINE_EXCEEDED (what its caller got), not OK.

The server has one handler thread; a gate in front of the real index's search holds the thread so
that the timing is deterministic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from support.serving import index_only_registry

from vitrine.api.overload import OverloadLimits
from vitrine.api.server import create_grpc_server
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc

pytestmark = pytest.mark.integration
DIM = 8


class GatedIndex:
    """The real index, with a gate the test opens in front of `search`: a request holds its handler
    thread there, after the task's last deadline check."""

    def __init__(self, index: EdgeIndex) -> None:
        self._index = index
        self.open = threading.Event()
        self.entered = threading.Event()

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.open.wait(30)
        return self._index.search(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


@pytest.fixture
def gated(
    tmp_path: Path,
) -> Iterator[tuple[GatedIndex, RecommenderMetrics, recommender_pb2_grpc.RecommenderStub]]:
    index = EdgeIndex(EdgeIndexConfig(tmp_path / "shard", DIM))
    rng = np.random.default_rng(1)
    items = []
    for i in range(10):
        v = rng.normal(size=DIM).astype(np.float32)
        items.append(IndexedItem(f"p{i}", 1, v / np.linalg.norm(v), ItemPayload(title=f"item {i}")))
    index.apply(items)
    source = GatedIndex(index)
    metrics = RecommenderMetrics()
    # one handler thread; a queue long enough for the ten waiting calls (the default, twice the
    # handlers, would refuse most of them with RESOURCE_EXHAUSTED: issue 14's admission bound)
    overload = OverloadLimits(max_concurrent_rpcs=1, max_queued_rpcs=16)
    server = create_grpc_server(
        index_only_registry(source, "m1", "A"),  # type: ignore[arg-type]
        metrics,
        workers=1,
        overload=overload,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield source, metrics, recommender_pb2_grpc.RecommenderStub(channel)
    source.open.set()
    channel.close()
    server.stop(0)
    index.close()


def _handled(metrics: RecommenderMetrics, code: str) -> float:
    return metrics.requests.labels("Similar", code, "A")._value.get()


def _started(metrics: RecommenderMetrics) -> float:
    return metrics.started.labels("Similar")._value.get()


def test_calls_that_expire_waiting_for_a_handler_are_counted_as_started(gated) -> None:
    source, metrics, stub = gated
    request = recommender_pb2.SimilarRequest(product_id="p0", limit=3)
    slow = stub.Similar.future(request, timeout=20)  # takes the only handler thread
    assert source.entered.wait(10)
    queued = [stub.Similar.future(request, timeout=0.3) for _ in range(10)]
    for call in queued:
        assert call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    source.open.set()
    assert slow.result(timeout=20).items
    deadline = time.monotonic() + 10
    while _started(metrics) < 11 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _started(metrics) == 11
    # the ten never reached a handler: only the slow call was handled
    assert _handled(metrics, "OK") == 1 and _handled(metrics, "DEADLINE_EXCEEDED") == 0


def test_a_call_finished_after_its_deadline_is_counted_as_deadline_exceeded(gated) -> None:
    source, metrics, stub = gated
    call = stub.Similar.future(recommender_pb2.SimilarRequest(product_id="p0", limit=3), timeout=0.3)
    assert source.entered.wait(10)  # the handler runs and waits past the deadline
    assert call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    source.open.set()
    deadline = time.monotonic() + 10
    while (
        _handled(metrics, "DEADLINE_EXCEEDED") + _handled(metrics, "OK") < 1 and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert _handled(metrics, "DEADLINE_EXCEEDED") == 1 and _handled(metrics, "OK") == 0
