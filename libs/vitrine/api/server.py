"""gRPC server assembly: the Recommender servicer, the standard health service and server reflection.

`create_grpc_server(...) -> GrpcServer` builds and binds (port 0 picks a free port) but does not start,
so services and tests wire the very same server. Requests are served from `source`, a `ModelRegistry`
(models and experiment variants, hot-reloadable).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from vitrine.api.accounting import StartedCalls
from vitrine.api.overload import OverloadLimits
from vitrine.api.reflection import enable_reflection
from vitrine.api.requests import RequestLimits
from vitrine.api.servicer import (
    ImpressionSink,
    RecommenderServicer,
    SnapshotSource,
    add_recommender_servicer,
)
from vitrine.errors import PortInUseError
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.v1 import recommender_pb2

RECOMMENDER_SERVICE = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", RECOMMENDER_SERVICE):
            self.health.set(name, status)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace_s: float) -> None:
        self.health.enter_graceful_shutdown()  # load balancers stop routing here before we stop answering
        self.server.stop(grace_s).wait()


def create_grpc_server(
    source: SnapshotSource,
    metrics: RecommenderMetrics,
    address: str = "127.0.0.1:0",
    workers: int = 8,
    limits: RequestLimits | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    impressions: ImpressionSink | None = None,
    overload: OverloadLimits | None = None,
    port_setting: str = "the gRPC port",
    reuse_port: bool = False,
) -> GrpcServer:
    """`workers` handler threads; `overload` bounds what waits for them, the response size and the
    deadline of calls without one (default: `workers` running, twice as many queued)."""
    overload = overload or OverloadLimits(max_concurrent_rpcs=workers, max_queued_rpcs=2 * workers)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=overload.max_concurrent_rpcs),
        # counted on arrival first, so even a call refused or dropped later is counted as started
        interceptors=[StartedCalls(metrics, RECOMMENDER_SERVICE), *interceptors],
        options=[
            # gRPC's default, stated here because docs/API.md quotes it (RESOURCE_EXHAUSTED above it)
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            # gRPC sets SO_REUSEPORT by default: a second server on a taken port would start and share
            # the calls with the first one instead of failing. Only the process-per-core layout
            # (several processes on one port on purpose, docs/OPERATIONS.md "Several processes on one
            # host") turns it on.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            *overload.server_options(),
        ],
        **overload.server_kwargs(),  # calls beyond running + queued: RESOURCE_EXHAUSTED at once
    )
    # not recommender_pb2_grpc.add_RecommenderServicer_to_server: undecodable requests must be
    # INVALID_ARGUMENT, not INTERNAL (servicer.add_recommender_servicer)
    add_recommender_servicer(RecommenderServicer(source, metrics, limits, impressions, overload), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection((RECOMMENDER_SERVICE, HEALTH_SERVICE), server)
    # TLS when credentials are given (vitrine.api.security.server_security builds them)
    try:
        port = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as e:  # grpc's "Failed to bind to address"
        port = 0
        cause: Exception | None = e
    else:
        cause = None
    if port == 0:
        raise PortInUseError(
            f"cannot serve gRPC on {address}: the address is in use or not available on this host; choose "
            f"another with {port_setting}"
        ) from cause
    grpc_server = GrpcServer(server, port, health_servicer)
    grpc_server.set_serving(False)
    return grpc_server
