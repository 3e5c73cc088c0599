"""A thin typed client for the Recommender API: one channel reused, deadlines, retries on UNAVAILABLE.

    with RecommenderClient("recommender:50051", timeout_s=0.3) as client:
        similar = client.similar("sku-123", limit=10, filters=Filters(max_per_seller=2))
        complements = client.complementary("sku-123", unit_key=session_id)
        ideas = client.inspire(history=["sku-1", "sku-9"], unit_key=session_id)
        page = client.batch([Similar("sku-123"), Complementary("sku-123")], unit_key=session_id)

`timeout_s` is the whole budget of a call, retries included: each attempt gets what is left of it as
its gRPC deadline. Only UNAVAILABLE is retried (the server did not start the work), with jittered
exponential backoff; every other status raises `grpc.RpcError` at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import grpc

from vitrine.api.security import ClientTls, open_channel
from vitrine.catalog.schema import Product
from vitrine.v1 import recommender_pb2 as pb
from vitrine.v1 import recommender_pb2_grpc

T = TypeVar("T")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
_TASKS = {pb.TASK_SIMILAR: "similar", pb.TASK_COMPLEMENTARY: "complementary", pb.TASK_INSPIRE: "inspire"}


@dataclass(frozen=True)
class Filters:
    include_out_of_stock: bool = False
    price_min: float | None = None
    price_max: float | None = None
    categories_include: Sequence[str] = ()
    categories_exclude: Sequence[str] = ()
    sellers_include: Sequence[str] = ()
    sellers_exclude: Sequence[str] = ()
    exclude_product_ids: Sequence[str] = ()
    max_per_seller: int = 0
    max_per_category: int = 0

    def to_proto(self) -> pb.Filters:
        f = pb.Filters(
            include_out_of_stock=self.include_out_of_stock,
            categories_include=list(self.categories_include),
            categories_exclude=list(self.categories_exclude),
            sellers_include=list(self.sellers_include),
            sellers_exclude=list(self.sellers_exclude),
            exclude_product_ids=list(self.exclude_product_ids),
            max_per_seller=self.max_per_seller,
            max_per_category=self.max_per_category,
        )
        if self.price_min is not None:
            f.price_min = self.price_min
        if self.price_max is not None:
            f.price_max = self.price_max
        return f


def _anchor(product_id: str | None, product: Product | None) -> dict[str, object]:
    if (product_id is None) == (product is None):
        raise ValueError("give exactly one of product_id and product")
    return {"product_id": product_id} if product is None else {"product": product.to_proto()}


@dataclass(frozen=True)
class Similar:
    product_id: str | None = None
    limit: int = 10
    product: Product | None = None  # inline instead of product_id
    filters: Filters = field(default_factory=Filters)
    unit_key: str = ""
    variant: str = ""

    def to_proto(self) -> pb.SimilarRequest:
        return pb.SimilarRequest(
            **_anchor(self.product_id, self.product),  # type: ignore[arg-type]
            limit=self.limit,
            filters=self.filters.to_proto(),
            unit_key=self.unit_key,
            variant=self.variant,
        )


@dataclass(frozen=True)
class Complementary:
    product_id: str | None = None
    limit: int = 10
    product: Product | None = None
    target_categories: Sequence[str] = ()
    filters: Filters = field(default_factory=Filters)
    unit_key: str = ""
    variant: str = ""

    def to_proto(self) -> pb.ComplementaryRequest:
        return pb.ComplementaryRequest(
            **_anchor(self.product_id, self.product),  # type: ignore[arg-type]
            limit=self.limit,
            target_categories=list(self.target_categories),
            filters=self.filters.to_proto(),
            unit_key=self.unit_key,
            variant=self.variant,
        )


@dataclass(frozen=True)
class Inspire:
    # product ids (later = more recent) or (product id, viewed at) pairs
    history: Sequence[str | tuple[str, datetime]] = ()
    intent: str = ""
    limit: int = 10
    filters: Filters = field(default_factory=Filters)
    strategy: Literal["clusters", "mmr"] = "clusters"
    nearest_clusters: int = 0  # 0 = server default (3)
    skip_clusters: int = 0
    max_anchors: int = 0  # 0 = server default (5)
    mmr_diversity: float | None = None  # None = server default (0.5)
    unit_key: str = ""
    variant: str = ""

    def to_proto(self) -> pb.InspireRequest:
        views = []
        for entry in self.history:
            if isinstance(entry, str):
                views.append(pb.ViewedProduct(product_id=entry))
            else:
                view = pb.ViewedProduct(product_id=entry[0])
                view.viewed_at.FromDatetime(entry[1])
                views.append(view)
        diversity = pb.Diversity(
            strategy=pb.Diversity.STRATEGY_MMR if self.strategy == "mmr" else pb.Diversity.STRATEGY_CLUSTERS,
            nearest_clusters=self.nearest_clusters,
            skip_clusters=self.skip_clusters,
            max_anchors=self.max_anchors,
        )
        if self.mmr_diversity is not None:
            diversity.mmr_diversity = self.mmr_diversity
        return pb.InspireRequest(
            history=views,
            intent=self.intent,
            limit=self.limit,
            filters=self.filters.to_proto(),
            diversity=diversity,
            unit_key=self.unit_key,
            variant=self.variant,
        )


Request = Similar | Complementary | Inspire


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    score: float
    title: str
    reason: str
    task: str = ""
    anchor_product_id: str = ""
    target_category: str = ""
    cluster: int = -1
    category: str = ""
    seller: str = ""
    price: float | None = None


@dataclass(frozen=True)
class RecommendationList:
    items: list[Recommendation]
    model_version: str
    variant: str

    @property
    def ids(self) -> list[str]:
        return [i.product_id for i in self.items]


@dataclass(frozen=True)
class BatchError:
    """A request of a batch that failed on its own (the others are answered)."""

    code: grpc.StatusCode
    message: str


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
        product_id: str | None = None,
        limit: int = 10,
        include_out_of_stock: bool = False,
        timeout_s: float | None = None,
        *,
        product: Product | None = None,
        filters: Filters | None = None,
        unit_key: str = "",
        variant: str = "",
    ) -> RecommendationList:
        """Substitutes of `product_id` (in the index) or of an inline `product`."""
        f = filters or Filters(include_out_of_stock=include_out_of_stock)
        request = Similar(product_id, limit, product, f, unit_key, variant).to_proto()
        return _to_list(self._call(lambda t: self._stub.Similar(request, timeout=t), timeout_s))

    def complementary(
        self,
        product_id: str | None = None,
        limit: int = 10,
        *,
        product: Product | None = None,
        target_categories: Sequence[str] = (),
        filters: Filters | None = None,
        unit_key: str = "",
        variant: str = "",
        timeout_s: float | None = None,
    ) -> RecommendationList:
        """What goes with a product, interleaved across target categories (the model's map by default)."""
        request = Complementary(
            product_id, limit, product, target_categories, filters or Filters(), unit_key, variant
        ).to_proto()
        return _to_list(self._call(lambda t: self._stub.Complementary(request, timeout=t), timeout_s))

    def inspire(
        self, request: Inspire | None = None, timeout_s: float | None = None, **fields: object
    ) -> RecommendationList:
        """Diverse discovery: `client.inspire(history=[...])`, `client.inspire(intent="...")` or
        `client.inspire(Inspire(...))`."""
        pb_request = (request or Inspire(**fields)).to_proto()  # type: ignore[arg-type]
        return _to_list(self._call(lambda t: self._stub.Inspire(pb_request, timeout=t), timeout_s))

    def batch(
        self,
        requests: Sequence[Request],
        unit_key: str = "",
        variant: str = "",
        timeout_s: float | None = None,
    ) -> list[RecommendationList | BatchError]:
        """Several lists in one call, all from the same variant; one result per request, in order."""
        entries = []
        for r in requests:
            if isinstance(r, Similar):
                entries.append(pb.RecommendRequest(similar=r.to_proto()))
            elif isinstance(r, Complementary):
                entries.append(pb.RecommendRequest(complementary=r.to_proto()))
            else:
                entries.append(pb.RecommendRequest(inspire=r.to_proto()))
        request = pb.BatchRequest(requests=entries, unit_key=unit_key, variant=variant)
        reply = self._call(lambda t: self._stub.Batch(request, timeout=t), timeout_s)
        return [
            _to_list(r.response) if r.code == 0 else BatchError(grpc.StatusCode(_status(r.code)), r.error)
            for r in reply.results
        ]

    def _call(self, rpc: Callable[[float], T], timeout_s: float | None) -> T:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        for attempt in range(self.retries + 1):
            try:
                return rpc(max(0.001, deadline - time.monotonic()))
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or attempt == self.retries:
                    raise
                # full jitter: retries of many clients do not arrive in lockstep
                pause = random.uniform(0, self.backoff_s * 2**attempt)
                if time.monotonic() + pause >= deadline:
                    raise  # no time left for another attempt
                time.sleep(pause)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status(code: int) -> tuple[int, str]:
    """grpc.StatusCode's value for a code number (the enum's values are (number, name) pairs)."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value  # type: ignore[no-any-return]
    return grpc.StatusCode.UNKNOWN.value  # type: ignore[no-any-return]


def _to_list(response: pb.RecommendResponse) -> RecommendationList:
    return RecommendationList(
        [
            Recommendation(
                i.product_id,
                i.score,
                i.title,
                i.reason,
                _TASKS.get(i.task, ""),
                i.anchor_product_id,
                i.target_category,
                i.cluster,
                i.category,
                i.seller,
                i.price if i.HasField("price") else None,
            )
            for i in response.items
        ],
        response.model_version,
        response.variant,
    )
