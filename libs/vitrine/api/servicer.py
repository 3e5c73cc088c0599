"""The Recommender gRPC servicer: routing to an experiment variant, the mapping of errors to status
codes (in one place: `status_of`), and metrics per method, status and variant. Request validation lives
in `vitrine.api.requests`, the task logic in `vitrine.serving` (`similar`, `complementary`,
`inspire`), which knows nothing of gRPC."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message_factory import GetMessageClass

from vitrine.api.overload import OverloadLimits, ResponseTooLargeError
from vitrine.api.requests import RequestLimits, RequestParser, Routing
from vitrine.api.wire import Undecodable, lenient
from vitrine.errors import IndexBackendError, InvalidRequestError, NotFoundError
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.complementary import complementary
from vitrine.serving.deadline import Deadline
from vitrine.serving.errors import DeadlineExceededError, NotConfiguredError
from vitrine.serving.inspire import inspire
from vitrine.serving.registry import ServedModel, ServingSnapshot
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.similar import similar
from vitrine.v1 import recommender_pb2 as pb
from vitrine.v1 import recommender_pb2_grpc

log = logging.getLogger(__name__)

__all__ = [
    "ImpressionSink",
    "RecommenderServicer",
    "RequestLimits",
    "SnapshotSource",
    "add_recommender_servicer",
    "new_recommendation_id",
    "status_of",
]

UNROUTED = "none"  # the variant label of requests rejected before a variant was chosen

_TASK_PB = {
    Task.SIMILAR: pb.TASK_SIMILAR,
    Task.COMPLEMENTARY: pb.TASK_COMPLEMENTARY,
    Task.INSPIRE: pb.TASK_INSPIRE,
}


class ImpressionSink(Protocol):
    """Where returned lists are recorded (vitrine.feedback.recorder.ImpressionRecorder): one call per
    list, which must not block."""

    def record(
        self,
        recommendation_id: str,
        unit_key: str,
        placement: str,
        experiment: str,
        variant: str,
        control_variant: str,
        model_version: str,
        task: Task,
        product_ids: list[str],
    ) -> bool: ...


def new_recommendation_id() -> str:
    """128 random bits as 32 hex digits: the key outcomes are joined on (os.urandom: no UUID object on
    the request path)."""
    return os.urandom(16).hex()


class SnapshotSource(Protocol):
    """Where requests get the snapshot they are served from (vitrine.serving.registry.ModelRegistry)."""

    def lease(self) -> AbstractContextManager[ServingSnapshot]: ...


def status_of(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failed request ends with: the one mapping of errors to codes."""
    if isinstance(error, InvalidRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, NotConfiguredError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(error)
    if isinstance(error, ResponseTooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    if isinstance(error, IndexBackendError):
        log.error("index unavailable: %s", error)
        return grpc.StatusCode.UNAVAILABLE, "the index is temporarily unavailable; retry with backoff"
    log.error("request failed", exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error"


@dataclass
class _Call:
    variant: str = UNROUTED


class RecommenderServicer(recommender_pb2_grpc.RecommenderServicer):
    def __init__(
        self,
        source: SnapshotSource,
        metrics: RecommenderMetrics,
        limits: RequestLimits | None = None,
        impressions: ImpressionSink | None = None,
        overload: OverloadLimits | None = None,
    ) -> None:
        self._source = source
        self.metrics = metrics
        self.parser = RequestParser(limits)
        # every returned list gets a recommendation id; with a sink, its impression is recorded too
        self.impressions = impressions
        self.overload = overload or OverloadLimits()

    @property
    def limits(self) -> RequestLimits:
        return self.parser.limits

    # -- methods ----------------------------------------------------------------------------------

    def Similar(self, request: pb.SimilarRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        return self._unary(
            "Similar", context, request, lambda s, d, c: self._similar(s, d, c, request, Routing())
        )

    def Complementary(
        self, request: pb.ComplementaryRequest, context: grpc.ServicerContext
    ) -> pb.RecommendResponse:
        return self._unary(
            "Complementary",
            context,
            request,
            lambda s, d, c: self._complementary(s, d, c, request, Routing()),
        )

    def Inspire(self, request: pb.InspireRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        return self._unary(
            "Inspire", context, request, lambda s, d, c: self._inspire(s, d, c, request, Routing())
        )

    def Batch(self, request: pb.BatchRequest, context: grpc.ServicerContext) -> pb.BatchResponse:
        def run(snapshot: ServingSnapshot, deadline: Deadline, call: _Call) -> pb.BatchResponse:
            self.parser.batch_size(len(request.requests))
            defaults = self.parser.routing(request.unit_key, request.variant, request.placement)
            call.variant = snapshot.router.route(defaults.unit_key, defaults.variant).name
            response = pb.BatchResponse()
            size = 0
            for i, r in enumerate(request.requests):
                result = self._batch_item(snapshot, deadline, r, defaults)
                # checked as it grows: a Batch never holds more than the bound and one result
                size += result.ByteSize() + 8
                if size > self.overload.max_response_bytes:
                    raise ResponseTooLargeError(
                        f"the Batch response passed {self.overload.max_response_bytes:,} bytes at request "
                        f"#{i + 1} of {len(request.requests)}: ask for fewer items (lower limits, fewer requests)"
                    )
                response.results.append(result)
            return response

        return self._unary("Batch", context, request, run)

    # -- tasks ------------------------------------------------------------------------------------

    def _similar(
        self,
        snapshot: ServingSnapshot,
        deadline: Deadline,
        call: _Call,
        r: pb.SimilarRequest,
        default: Routing,
    ) -> pb.RecommendResponse:
        routing = self._routing(r, default)
        served, variant = self._route(snapshot, routing, call, Task.SIMILAR)
        query = self.parser.similar(r)
        return self._respond(
            snapshot, similar(served, query, deadline), served, variant, routing, Task.SIMILAR
        )

    def _complementary(
        self,
        snapshot: ServingSnapshot,
        deadline: Deadline,
        call: _Call,
        r: pb.ComplementaryRequest,
        default: Routing,
    ) -> pb.RecommendResponse:
        routing = self._routing(r, default)
        served, variant = self._route(snapshot, routing, call, Task.COMPLEMENTARY)
        query = self.parser.complementary(r)
        return self._respond(
            snapshot, complementary(served, query, deadline), served, variant, routing, Task.COMPLEMENTARY
        )

    def _inspire(
        self,
        snapshot: ServingSnapshot,
        deadline: Deadline,
        call: _Call,
        r: pb.InspireRequest,
        default: Routing,
    ) -> pb.RecommendResponse:
        routing = self._routing(r, default)
        served, variant = self._route(snapshot, routing, call, Task.INSPIRE)
        query = self.parser.inspire(r)
        return self._respond(
            snapshot, inspire(served, query, deadline), served, variant, routing, Task.INSPIRE
        )

    @staticmethod
    def _route(
        snapshot: ServingSnapshot, routing: Routing, call: _Call, task: Task
    ) -> tuple[ServedModel, str]:
        """The variant first, so that even a request rejected afterwards is counted under its variant."""
        variant = snapshot.router.route(routing.unit_key, routing.variant)
        call.variant = variant.name
        return snapshot.model_for(variant, task), variant.name

    def _routing(self, r: Any, default: Routing) -> Routing:
        return self.parser.routing(
            r.unit_key or default.unit_key, r.variant or default.variant, r.placement or default.placement
        )

    def _respond(
        self,
        snapshot: ServingSnapshot,
        items: list[Recommendation],
        served: ServedModel,
        variant: str,
        routing: Routing,
        task: Task,
    ) -> pb.RecommendResponse:
        """The response, with a new recommendation id; its impression goes to the sink (never blocks)."""
        response = _response(items, served.model_version, variant)
        response.recommendation_id = new_recommendation_id()
        if self.impressions is not None:
            self.impressions.record(
                response.recommendation_id,
                routing.unit_key,
                routing.placement or task.value,
                snapshot.router.salt,
                variant,
                snapshot.router.control.name,
                served.model_version,
                task,
                [item.product_id for item in items],
            )
        return response

    def _batch_item(
        self, snapshot: ServingSnapshot, deadline: Deadline, r: pb.RecommendRequest, default: Routing
    ) -> pb.BatchResult:
        deadline.check("the batch")  # a late batch stops as a whole: its caller has given up
        kind = r.WhichOneof("task")
        method = f"Batch.{(kind or 'none').capitalize()}"
        call = _Call()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if kind == "similar":
                response = self._similar(snapshot, deadline, call, r.similar, default)
            elif kind == "complementary":
                response = self._complementary(snapshot, deadline, call, r.complementary, default)
            elif kind == "inspire":
                response = self._inspire(snapshot, deadline, call, r.inspire, default)
            else:
                raise InvalidRequestError("a batch request must set similar, complementary or inspire")
            return pb.BatchResult(response=response)
        except DeadlineExceededError:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise
        except Exception as e:
            code, message = status_of(e)
            return pb.BatchResult(code=code.value[0], error=message)
        finally:
            self._observe(method, code, call.variant, started)

    # -- plumbing ---------------------------------------------------------------------------------

    def _unary(
        self,
        method: str,
        context: grpc.ServicerContext,
        request: Any,
        run: Callable[[ServingSnapshot, Deadline, _Call], Any],
    ) -> Any:
        started = time.perf_counter()
        call = _Call()
        code, message = grpc.StatusCode.OK, ""
        try:
            if isinstance(request, Undecodable):  # bytes that are not a request (see `wire`)
                raise InvalidRequestError(request.message)
            with self._source.lease() as snapshot:
                deadline = Deadline(context, default_s=self.overload.default_deadline_s)
                response = run(snapshot, deadline, call)
                self.overload.check_response_size(response)
            # finished too late: the caller has DEADLINE_EXCEEDED already and gRPC drops the response
            deadline.check("the response")
            return response
        except Exception as e:
            code, message = status_of(e)
        finally:
            self._observe(method, code, call.variant, started)
        context.abort(code, message)  # raises: the call ends with this status

    def _observe(self, method: str, code: grpc.StatusCode, variant: str, started: float) -> None:
        self.metrics.observe_request(method, code.name, variant, time.perf_counter() - started)


def add_recommender_servicer(servicer: RecommenderServicer, server: grpc.Server) -> None:
    """Register the servicer as the generated `add_RecommenderServicer_to_server` does, but with
    lenient request deserializers (`wire.lenient`): gRPC itself would answer bytes that are not a valid
    request (invalid UTF-8 in a string, a truncated message) with INTERNAL before any handler runs;
    here they reach the servicer, which answers INVALID_ARGUMENT naming the field."""
    service = pb.DESCRIPTOR.services_by_name["Recommender"]
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, m.name),
            request_deserializer=lenient(GetMessageClass(m.input_type)),
            response_serializer=GetMessageClass(m.output_type).SerializeToString,
        )
        for m in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _response(items: list[Recommendation], model_version: str, variant: str) -> pb.RecommendResponse:
    """The response, each item built in place (`items.add`): a message built apart and then put in
    the list is copied once more."""
    response = pb.RecommendResponse(model_version=model_version, variant=variant)
    add = response.items.add
    for r in items:
        item, p = r.item, r.item.payload
        add(
            product_id=item.product_id,
            score=item.score,
            title=p.title,
            reason=r.reason,
            task=_TASK_PB[r.task],
            anchor_product_id=r.anchor_id,
            target_category=r.target_category,
            cluster=p.cluster,
            category=p.leaf_category,
            seller=p.seller,
            price=p.price,
        )
    return response
