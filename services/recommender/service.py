"""Recommender service: wiring and lifecycle. gRPC API + health + reflection + /metrics, and (embedded
mode) the local Qdrant Edge shard fed from catalog.vectors."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.model.serving import load_serving_model
from vitrine.obs.metrics import MetricsServer, RecommenderMetrics, serve_metrics
from vitrine.serving.grpc_api import RecommenderServicer, ServingState
from vitrine.stream.kafka import KafkaSettings, make_consumer
from vitrine.stream.vector_feed import VectorFeed
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc
from vitrine_services.recommender.settings import RecommenderSettings

log = logging.getLogger(__name__)

SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


@dataclass
class RecommenderService:
    settings: RecommenderSettings
    server: grpc.Server
    port: int
    health: health.HealthServicer
    feed: VectorFeed
    index: EdgeIndex
    metrics_server: MetricsServer
    metrics: RecommenderMetrics
    model_version: str

    def wait_ready(self) -> bool:
        """Serve once the local index has caught up with the vectors topic."""
        ready = self.feed.wait_caught_up(self.settings.startup_timeout_s)
        if ready:
            self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
            self.health.set("", health_pb2.HealthCheckResponse.SERVING)
            self.metrics.items.labels(self.model_version).set(self.index.count())
            log.info("recommender serving on port %d (%d items)", self.port, self.index.count())
        return ready

    def stop(self) -> None:
        self.health.enter_graceful_shutdown()  # load balancers stop sending before we stop answering
        self.server.stop(self.settings.shutdown_grace_s).wait()
        self.feed.stop()
        self.index.close()
        self.metrics_server.close()


def create_server(settings: RecommenderSettings) -> RecommenderService:
    model = load_serving_model(settings.model_dir)
    metrics = RecommenderMetrics()
    # The shard is a cache of the vectors topic: rebuilt from the topic at every start.
    shutil.rmtree(settings.index_path, ignore_errors=True)
    index = EdgeIndex(EdgeIndexConfig(settings.index_path, model.dim))
    kafka = KafkaSettings(settings.kafka_bootstrap_servers, client_id="vitrine-recommender")
    feed = VectorFeed(make_consumer(kafka), settings.vectors_topic, index, metrics, model.model_version)

    state = ServingState(index=index, model_version=model.model_version)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.grpc_workers))
    recommender_pb2_grpc.add_RecommenderServicer_to_server(RecommenderServicer(lambda: state, metrics), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    metrics_server = serve_metrics(metrics.registry, settings.metrics_port)
    server.start()
    feed.start()
    log.info("recommender gRPC on %s:%d, metrics on :%d", settings.grpc_host, port, metrics_server.port)
    return RecommenderService(
        settings, server, port, health_servicer, feed, index, metrics_server, metrics, model.model_version
    )


def run_recommender(settings: RecommenderSettings) -> int:
    service = create_server(settings)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: graceful shutdown", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not service.wait_ready():
        log.error("vector feed did not catch up within %.0fs", settings.startup_timeout_s)
    while not stopped.wait(1.0):
        if service.feed.error is not None:
            log.error("vector feed failed; stopping so the orchestrator restarts this replica")
            service.stop()
            return 1
        service.metrics.items.labels(service.model_version).set(service.index.count())
    service.stop()
    return 0
