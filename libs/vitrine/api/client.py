"""A thin typed client for the Recommender API: one channel reused, deadlines, retries on UNAVAILABLE.

    with RecommenderClient("recommender:50051", timeout_s=0.3) as client:
        similar = client.similar("sku-123", limit=10, filters=Filters(max_per_seller=2))
        complements = client.complementary("sku-123", unit_key=session_id)
        ideas = client.inspire(history=["sku-1", "sku-9"], unit_key=session_id)
        page = client.batch([Similar("sku-123"), Complementary("sku-123")], unit_key=session_id)

`timeout_s` is the whole budget of a call, retries included: each attempt gets what is left of it as
its gRPC deadline. Only UNAVAILABLE is retried (the server did not start the work), with jittered
exponential backoff; every other status raises at once. A failed call raises a `RecommenderError`
subclass named after what went wrong (`InvalidRequest`, `NotFound`, `NotServed`, `DeadlineExceeded`,
`Unavailable`, `Unauthenticated`, `ResourceExhausted`, `ServerError`); each is also a
`grpc.RpcError` with `code()` and `details()`, so code written against gRPC keeps working. In a
`batch`, a request that fails on its own is a `BatchError` in the result list (`.to_exception()`
gives the same typed error).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    placement: str = ""  # recorded with the list's impression (default: "similar")

    def to_proto(self) -> pb.SimilarRequest:
        return pb.SimilarRequest(
            **_anchor(self.product_id, self.product),  # type: ignore[arg-type]
            limit=self.limit,
            filters=self.filters.to_proto(),
            unit_key=self.unit_key,
            variant=self.variant,
            placement=self.placement,
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
    placement: str = ""

    def to_proto(self) -> pb.ComplementaryRequest:
        return pb.ComplementaryRequest(
            **_anchor(self.product_id, self.product),  # type: ignore[arg-type]
            limit=self.limit,
            target_categories=list(self.target_categories),
            filters=self.filters.to_proto(),
            unit_key=self.unit_key,
            variant=self.variant,
            placement=self.placement,
        )


_STRATEGIES = {
    None: pb.Diversity.STRATEGY_UNSPECIFIED,
    "clusters": pb.Diversity.STRATEGY_CLUSTERS,
    "mmr": pb.Diversity.STRATEGY_MMR,
}


@dataclass(frozen=True)
class Inspire:
    # product ids (later = more recent) or (product id, viewed at) pairs
    history: Sequence[str | tuple[str, datetime]] = ()
    intent: str = ""
    limit: int = 10
    filters: Filters = field(default_factory=Filters)
    # None = server default: clusters for a history, the intent's nearest items for an intent
    strategy: Literal["clusters", "mmr"] | None = None
    nearest_clusters: int = 0  # 0 = server default (3)
    skip_clusters: int = 0
    max_anchors: int = 0  # 0 = server default (5)
    mmr_diversity: float | None = None  # None = server default (0.5; an intent's default 0)
    unit_key: str = ""
    variant: str = ""
    placement: str = ""

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
            strategy=_STRATEGIES[self.strategy],
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
            placement=self.placement,
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
    # send it back with the clicks and purchases this list leads to (vitrine.feedback.publisher)
    recommendation_id: str = ""

    @property
    def ids(self) -> list[str]:
        return [i.product_id for i in self.items]


class RecommenderError(grpc.RpcError):
    """A call that failed with a gRPC status. `code()` / `details()` as on `grpc.RpcError`."""

    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}"


class InvalidRequest(RecommenderError):
    """INVALID_ARGUMENT: a limit or rule of the request is broken; the message names the field."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RecommenderError):
    """NOT_FOUND: the product is not in the index (unknown or deleted), or no history product is."""

    status = grpc.StatusCode.NOT_FOUND


class NotServed(RecommenderError):
    """FAILED_PRECONDITION: the variant serves no model for this task (a deployment question)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(RecommenderError):
    """DEADLINE_EXCEEDED: the call's budget (`timeout_s`) ran out."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(RecommenderError):
    """UNAVAILABLE: still unavailable after the retries (server unreachable, index down)."""

    status = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(RecommenderError):
    """UNAUTHENTICATED / PERMISSION_DENIED: a token is required and missing or wrong."""

    status = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(RecommenderError):
    """RESOURCE_EXHAUSTED: the request or response is too large, or the server is saturated."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class ServerError(RecommenderError):
    """INTERNAL and every other status: a server bug or an unexpected failure."""

    status = grpc.StatusCode.INTERNAL


_ERRORS: dict[grpc.StatusCode, type[RecommenderError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        NotFound,
        NotServed,
        DeadlineExceeded,
        Unavailable,
        Unauthenticated,
        ResourceExhausted,
    )
}
_ERRORS[grpc.StatusCode.PERMISSION_DENIED] = Unauthenticated


def error_for(code: grpc.StatusCode, details: str) -> RecommenderError:
    """The typed error of a status code (ServerError for any code without its own class)."""
    return _ERRORS.get(code, ServerError)(code, details)


@dataclass(frozen=True)
class BatchError:
    """A request of a batch that failed on its own (the others are answered)."""

    code: grpc.StatusCode
    message: str

    def to_exception(self) -> RecommenderError:
        """The typed error a single call would have raised."""
        return error_for(self.code, self.message)


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
        placement: str = "",
    ) -> RecommendationList:
        """Substitutes of `product_id` (in the index) or of an inline `product`. `include_out_of_stock`
        also applies when `filters` are given (it adds to them; `Filters.include_out_of_stock` too)."""
        f = filters or Filters()
        if include_out_of_stock and not f.include_out_of_stock:
            f = replace(f, include_out_of_stock=True)
        request = Similar(product_id, limit, product, f, unit_key, variant, placement).to_proto()
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
        placement: str = "",
    ) -> RecommendationList:
        """What goes with a product, interleaved across target categories (the model's map by default)."""
        request = Complementary(
            product_id, limit, product, target_categories, filters or Filters(), unit_key, variant, placement
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
        placement: str = "",
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
        request = pb.BatchRequest(requests=entries, unit_key=unit_key, variant=variant, placement=placement)
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
                    raise error_for(e.code(), e.details() or "") from e
                # full jitter: retries of many clients do not arrive in lockstep
                pause = random.uniform(0, self.backoff_s * 2**attempt)
                if time.monotonic() + pause >= deadline:
                    raise error_for(e.code(), e.details() or "") from e  # no time left for another attempt
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
        response.recommendation_id,
    )
