"""Encoder service: wiring and lifecycle. Consumes catalog.products, writes vectors, exposes /metrics."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from types import FrameType

from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.serving import load_serving_model
from vitrine.obs.metrics import EncoderMetrics, MetricsServer, serve_metrics
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.encoding import EncoderPipeline
from vitrine.stream.kafka import FLUSHING_PRODUCER, KafkaSettings, TopicNames, make_consumer, make_producer
from vitrine.stream.sinks import IndexSink, KafkaVectorSink, VectorSink
from vitrine.stream.topics import ensure_catalog_topics
from vitrine.stream.worker import BatchPolicy, EncoderWorker
from vitrine_services.encoder.settings import EncoderSettings

log = logging.getLogger(__name__)


@dataclass
class EncoderService:
    settings: EncoderSettings
    worker: EncoderWorker
    metrics_server: MetricsServer

    def run(self) -> None:
        """Consume until stop(); then finish the batch in flight, commit and leave the group."""
        try:
            self.worker.run()
        finally:
            self.metrics_server.close()

    def stop(self) -> None:
        self.worker.stop()


def build_encoder(settings: EncoderSettings) -> EncoderService:
    kafka = KafkaSettings(
        settings.kafka_bootstrap_servers, client_id="vitrine-encoder", security=settings.kafka_security()
    )
    topics = TopicNames(settings.products_topic, settings.vectors_topic, settings.dead_letter_topic)
    if settings.create_topics:
        ensure_catalog_topics(kafka, topics, settings.topic_partitions)
    model = load_serving_model(settings.model_dir)
    log.info("encoder model %s (dim %d, task %s)", model.model_version, model.dim, model.task)

    metrics = EncoderMetrics()
    producer = make_producer(kafka, **FLUSHING_PRODUCER)
    sink: VectorSink
    if settings.sink == "qdrant":
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        collection = settings.qdrant_collection or f"vitrine-{model.model_version}"
        sink = IndexSink(
            QdrantServerIndex(QdrantServerConfig(settings.qdrant_url, collection, model.dim, api_key=api_key))
        )
    else:
        kafka_sink = KafkaVectorSink(producer, topics.vectors)
        restore_consumer = make_consumer(kafka, client_id="vitrine-encoder-restore")
        try:
            kafka_sink.restore(restore_consumer)
        finally:
            restore_consumer.close()
        sink = kafka_sink
    pipeline = EncoderPipeline(model, sink, KafkaDeadLetters(producer, topics.dead_letters), metrics)
    consumer = make_consumer(kafka, group_id=settings.group_id, max_poll_records=settings.max_batch)
    worker = EncoderWorker(
        consumer, topics.products, pipeline, BatchPolicy(settings.max_batch, settings.max_wait_ms), metrics
    )
    metrics_server = serve_metrics(metrics.registry, settings.metrics_port)
    log.info("encoder metrics on :%d/metrics", metrics_server.port)
    return EncoderService(settings, worker, metrics_server)


def run_encoder(settings: EncoderSettings) -> int:
    service = build_encoder(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight, committing, leaving the group", signum)
        service.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    service.run()
    return 0
