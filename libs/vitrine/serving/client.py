"""A thin typed client for the Recommender API: one channel reused, deadlines, retries on UNAVAILABLE.

with RecommenderClient("recommender:50051") as client:
    items = client.similar("sku-123", limit=10)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from vitrine.serving.security import ClientTls, open_channel
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc

T = TypeVar("T")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    score: float
    title: str
    reason: str


@dataclass(frozen=True)
class RecommendationList:
    items: list[Recommendation]
    model_version: str
    variant: str

    @property
    def ids(self) -> list[str]:
        return [i.product_id for i in self.items]


class RecommenderClient:
    def __init__(
        self,
        target: str,
        timeout_s: float = 1.0,
        retries: int = 3,
        backoff_s: float = 0.05,
        channel: grpc.Channel | None = None,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> None:
        # tls: verify the server (and present a client certificate for mTLS); token: sent on every call
        self._channel = channel or open_channel(target, tls, token)
        self._stub = recommender_pb2_grpc.RecommenderStub(self._channel)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def similar(
        self,
        product_id: str,
        limit: int = 10,
        include_out_of_stock: bool = False,
        timeout_s: float | None = None,
    ) -> RecommendationList:
        request = recommender_pb2.SimilarRequest(
            product_id=product_id,
            limit=limit,
            filters=recommender_pb2.Filters(include_out_of_stock=include_out_of_stock),
        )
        return _to_list(self._call(lambda t: self._stub.Similar(request, timeout=t), timeout_s))

    def _call(self, rpc: Callable[[float], T], timeout_s: float | None) -> T:
        timeout = timeout_s or self.timeout_s
        for attempt in range(self.retries + 1):
            try:
                return rpc(timeout)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or attempt == self.retries:
                    raise
                # full jitter: retries of many clients do not arrive in lockstep
                time.sleep(random.uniform(0, self.backoff_s * 2**attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_list(response: recommender_pb2.RecommendResponse) -> RecommendationList:
    return RecommendationList(
        [Recommendation(i.product_id, i.score, i.title, i.reason) for i in response.items],
        response.model_version,
        response.variant,
    )
