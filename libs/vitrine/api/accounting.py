"""Counting every call on arrival, before it waits for a handler thread.

The servicer counts the calls it handles, with their status. A call whose deadline passes while it
waits in gRPC's queue (or that its caller cancels) never reaches a handler: gRPC ends it without
running any code of ours, so it was counted nowhere (issue 17: of 20 calls with a 1 ms deadline the
server counted 2 DEADLINE_EXCEEDED, 4 OK and nothing for 14). A server interceptor runs when the call
arrives, so `vitrine_recommender_requests_started_total` counts it there; started minus handled is
what was dropped (and in flight), the convention of go-grpc-prometheus' started/handled counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from vitrine.obs.metrics import RecommenderMetrics


class StartedCalls(grpc.ServerInterceptor):
    """Counts calls to `service` (full name) by method, as they arrive."""

    def __init__(self, metrics: RecommenderMetrics, service: str) -> None:
        self._started = metrics.started
        self._prefix = f"/{service}/"
        # full method path -> its bound counter child: `labels()` on every call costs more than the
        # count (issue 19); bounded by the service's methods
        self._children: dict[str, Any] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        child = self._children.get(method)
        if child is None and method.startswith(self._prefix):
            child = self._children[method] = self._started.labels(method[len(self._prefix) :])
        if child is not None:
            child.inc()
        return continuation(handler_call_details)
