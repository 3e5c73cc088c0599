"""Recommender service: wiring and lifecycle. gRPC API + health + reflection + /metrics, and (embedded
mode) the local Qdrant Edge shard fed from catalog.vectors."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import VectorIndex
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.serving import load_serving_model
from vitrine.obs.metrics import MetricsServer, RecommenderMetrics, serve_metrics
from vitrine.serving.grpc_api import ServingState
from vitrine.serving.grpc_server import GrpcServer, create_grpc_server
from vitrine.serving.security import server_security
from vitrine.stream.kafka import KafkaSettings, make_consumer
from vitrine.stream.vector_feed import VectorFeed
from vitrine_services.recommender.settings import RecommenderSettings

log = logging.getLogger(__name__)


@dataclass
class RecommenderService:
    settings: RecommenderSettings
    grpc: GrpcServer
    feed: VectorFeed | None  # embedded mode only
    index: VectorIndex
    metrics_server: MetricsServer
    metrics: RecommenderMetrics
    model_version: str

    def wait_ready(self, timeout_s: float) -> bool:
        """Report SERVING once the local index has caught up with the vectors topic (embedded mode)."""
        ready = self.feed is None or self.feed.wait_caught_up(timeout_s)
        if ready:
            self.grpc.set_serving(True)
            self.refresh_gauges()
            log.info("recommender serving on port %d (%d items)", self.grpc.port, self.index.count())
        return ready

    def refresh_gauges(self) -> None:
        self.metrics.items.labels(self.model_version).set(self.index.count())

    def stop(self) -> None:
        self.grpc.stop(self.settings.shutdown_grace_s)
        if self.feed is not None:
            self.feed.stop()
        self.index.close()
        self.metrics_server.close()


def create_service(settings: RecommenderSettings) -> RecommenderService:
    # TLS files and tokens are checked first: a bad security setting fails before the model loads
    security = server_security(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file, settings.auth_token_list()
    )
    model = load_serving_model(settings.model_dir)
    metrics = RecommenderMetrics()
    index: VectorIndex
    feed: VectorFeed | None = None
    if settings.index_mode == "server":
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        config = QdrantServerConfig(
            settings.qdrant_url, settings.qdrant_collection, model.dim, api_key=api_key
        )
        index = QdrantServerIndex(config, create=False)
    else:
        # The shard is a cache of the vectors topic: rebuilt from the topic at every start.
        shutil.rmtree(settings.index_path, ignore_errors=True)
        index = EdgeIndex(EdgeIndexConfig(settings.index_path, model.dim))
        kafka = KafkaSettings(
            settings.kafka_bootstrap_servers,
            client_id="vitrine-recommender",
            security=settings.kafka_security(),
        )
        feed = VectorFeed(make_consumer(kafka), settings.vectors_topic, index, metrics, model.model_version)
    state = ServingState(index=index, model_version=model.model_version)
    grpc_server = create_grpc_server(
        lambda: state,
        metrics,
        f"{settings.grpc_host}:{settings.grpc_port}",
        settings.grpc_workers,
        interceptors=security.interceptors,
        credentials=security.credentials,
    )
    log.info("recommender gRPC security: %s", security.describe())
    if security.is_open and settings.grpc_host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("gRPC on %s without TLS or a token: only behind a trusted network", settings.grpc_host)
    metrics_server = serve_metrics(metrics.registry, settings.metrics_port)
    grpc_server.start()
    if feed is not None:
        feed.start()
    log.info(
        "recommender gRPC on %s:%d, metrics on :%d", settings.grpc_host, grpc_server.port, metrics_server.port
    )
    return RecommenderService(
        settings, grpc_server, feed, index, metrics_server, metrics, model.model_version
    )


def run_recommender(settings: RecommenderSettings) -> int:
    service = create_service(settings)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: graceful shutdown", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.monotonic() + settings.startup_timeout_s
    while not stopped.is_set() and not service.wait_ready(0.5):
        if service.feed is not None and service.feed.error is not None:
            log.error("vector feed failed during start-up")
            service.stop()
            return 1
        if time.monotonic() > deadline:
            log.error("vector feed did not catch up within %.0fs; stopping", settings.startup_timeout_s)
            service.stop()
            return 1
    while not stopped.wait(1.0):
        if service.feed is not None and service.feed.error is not None:
            log.error("vector feed failed; stopping so the orchestrator restarts this replica")
            service.stop()
            return 1
        service.refresh_gauges()
    service.stop()
    return 0
