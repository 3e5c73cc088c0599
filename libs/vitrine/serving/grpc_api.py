"""The Recommender gRPC servicer: request validation, the mapping of errors to status codes (in one
place), and metrics per method, status and variant. The task logic lives in the task modules."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from vitrine.errors import IndexBackendError, InvalidRequestError, NotFoundError
from vitrine.index.port import ScoredItem, SearchFilter, VectorIndex
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.similar import similar
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RequestLimits:
    default_limit: int = 10
    max_limit: int = 500
    max_id_chars: int = 256


@dataclass
class ServingState:
    """What a request is served from; replaced as a whole on hot reload."""

    index: VectorIndex
    model_version: str
    variant: str = "default"


class RecommenderServicer(recommender_pb2_grpc.RecommenderServicer):
    def __init__(
        self,
        state: Callable[[], ServingState],
        metrics: RecommenderMetrics,
        limits: RequestLimits | None = None,
    ) -> None:
        self._state = state
        self.metrics = metrics
        self.limits = limits or RequestLimits()

    def Similar(
        self, request: recommender_pb2.SimilarRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        def run(state: ServingState) -> recommender_pb2.RecommendResponse:
            product_id = self._product_id(request.product_id)
            limit = self._limit(request.limit)
            items = similar(state.index, product_id, limit, self._filter(request.filters))
            return self._response(state, items, f"similar to {product_id}")

        return self._handle("Similar", context, run)

    # -- shared plumbing ------------------------------------------------------------------------

    def _handle(self, method: str, context: grpc.ServicerContext, run: Callable[[ServingState], T]) -> T:
        state = self._state()
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, ""
        try:
            return run(state)
        except InvalidRequestError as e:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(e)
        except NotFoundError as e:
            code, message = grpc.StatusCode.NOT_FOUND, str(e)
        except IndexBackendError as e:
            log.error("%s: index unavailable: %s", method, e)
            code, message = (
                grpc.StatusCode.UNAVAILABLE,
                "the index is temporarily unavailable; retry with backoff",
            )
        except Exception:
            log.exception("%s failed", method)
            code, message = grpc.StatusCode.INTERNAL, "internal error"
        finally:
            self.metrics.requests.labels(method, code.name, state.variant).inc()
            self.metrics.latency.labels(method, state.variant).observe(time.perf_counter() - started)
        context.abort(code, message)  # raises: the call ends with this status

    def _product_id(self, product_id: str) -> str:
        if not product_id:
            raise InvalidRequestError("product_id is required")
        if len(product_id) > self.limits.max_id_chars:
            raise InvalidRequestError(f"product_id is longer than {self.limits.max_id_chars} characters")
        return product_id

    def _limit(self, limit: int) -> int:
        if limit == 0:
            return self.limits.default_limit
        if not 1 <= limit <= self.limits.max_limit:
            raise InvalidRequestError(f"limit must be between 1 and {self.limits.max_limit}, got {limit}")
        return limit

    @staticmethod
    def _filter(filters: Any) -> SearchFilter:
        return SearchFilter(in_stock_only=not filters.include_out_of_stock)

    @staticmethod
    def _response(
        state: ServingState, items: list[ScoredItem], reason: str
    ) -> recommender_pb2.RecommendResponse:
        return recommender_pb2.RecommendResponse(
            items=[
                recommender_pb2.RecommendedItem(
                    product_id=i.product_id, score=i.score, title=i.payload.title, reason=reason
                )
                for i in items
            ],
            model_version=state.model_version,
            variant=state.variant,
        )
