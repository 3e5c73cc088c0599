"""Encoder service: wiring and lifecycle. Consumes catalog.products, writes vectors, exposes /metrics."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from kafka import KafkaProducer
from kafka.errors import KafkaError

from vitrine.errors import ConfigError
from vitrine.index import open_index
from vitrine.model.inference import InferenceModel, load_inference_model
from vitrine.obs.metrics import EncoderMetrics, MetricsServer, serve_metrics
from vitrine.stream.dead_letters import DeadLetterWriter, KafkaDeadLetters
from vitrine.stream.kafka import FLUSHING_PRODUCER, KafkaSettings, TopicNames, make_consumer, make_producer
from vitrine.stream.pipeline import BatchOutcome, EncoderPipeline
from vitrine.stream.sinks import KafkaVectorSink, VectorSink
from vitrine.stream.topics import ensure_catalog_topics
from vitrine.stream.transactions import TransactionalProducer, make_transactional_producer
from vitrine.stream.worker import BatchPolicy, CatchUp, EncoderWorker
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
    model = load_inference_model(settings.model_dir, threads=settings.model_threads)
    version = model.model_version
    log.info("encoder model %s (dim %d, task %s)", version, model.dim, model.task)
    metrics = EncoderMetrics()
    # bound first: a taken port stops the service before it creates topics or joins a group
    metrics_server = serve_metrics(
        metrics.registry,
        settings.metrics_port,
        settings.metrics_host,
        setting="VITRINE_ENCODER_METRICS_PORT (--metrics-port)",
    )
    try:
        return _build_worker(settings, kafka, model, metrics, metrics_server)
    except BaseException:
        metrics_server.close()
        raise


def _build_worker(
    settings: EncoderSettings,
    kafka: KafkaSettings,
    model: InferenceModel,
    metrics: EncoderMetrics,
    metrics_server: MetricsServer,
) -> EncoderService:
    version = model.model_version
    topics = TopicNames(
        settings.products_topic, settings.resolved_vectors_topic(version), settings.dead_letter_topic
    )
    if settings.create_topics:
        ensure_catalog_topics(kafka, topics, settings.topic_partitions)

    group_id = settings.resolved_group_id(version)
    metrics.model_info.labels(version, model.task, model.card.model_kind, group_id).set(1)
    producer: KafkaProducer | TransactionalProducer
    transactions: TransactionalProducer | None = None
    if settings.index_mode == "embedded" and settings.exactly_once:
        # vectors, dead letters and offsets of a batch in one transaction (fencing zombies, KIP-447);
        # initialised now, before the restore below: this aborts whatever transaction this
        # instance's previous incarnation left open, so the restore reads everything committed
        transactions = make_transactional_producer(
            kafka,
            settings.resolved_transactional_id(version),
            settings.transaction_timeout_ms,
            **FLUSHING_PRODUCER,
        )
        try:
            transactions.start()
        except KafkaError as e:
            raise ConfigError(
                f"cannot start a Kafka transaction ({type(e).__name__}: {e}); brokers without "
                "transactions (or without TransactionalId ACLs for this principal) need "
                "VITRINE_ENCODER_EXACTLY_ONCE=false"
            ) from e
        producer = transactions
        log.info("exactly-once: transactional.id %s", transactions.transactional_id)
    else:
        producer = make_producer(kafka, **FLUSHING_PRODUCER)
    sink: VectorSink
    point_alias: Callable[[], None] | None = None
    if settings.index_mode == "server":
        collection = settings.resolved_collection(version)
        index = open_index(settings, dim=model.dim, name=collection)
        sink = index  # the index is the sink: its version guard makes retries harmless
        if settings.qdrant_alias:
            alias = settings.qdrant_alias

            def point_alias() -> None:
                index.point_alias(alias)
                log.info("alias %s now names collection %s (model %s)", alias, collection, version)

        log.info("writing to Qdrant collection %s", collection)
    else:
        kafka_sink = KafkaVectorSink(
            producer,
            topics.vectors,
            make_consumer(kafka, client_id="vitrine-encoder-restore"),
            model_version=version,
        )
        kafka_sink.restore()
        sink = kafka_sink
        log.info("writing to vectors topic %s", topics.vectors)
    writer = DeadLetterWriter(group_id, version, settings.resolved_dead_letter_invalid())
    dead_letters = KafkaDeadLetters(
        producer, topics.dead_letters, writer, envelopes=metrics.dead_letter_envelopes
    )
    pipeline = EncoderPipeline(model, sink, dead_letters, metrics)
    # a new group starts from the earliest offset (auto_offset_reset): that is a backfill's replay
    consumer = make_consumer(kafka, group_id=group_id, max_poll_records=settings.max_batch)
    worker = EncoderWorker(
        consumer,
        topics.products,
        pipeline,
        BatchPolicy(settings.max_batch, settings.max_wait_ms),
        metrics,
        transactions=transactions,
    )
    if settings.backfill:
        worker.on_batch = _progress_logger(worker)

    def caught_up(progress: CatchUp) -> None:
        if point_alias is not None:
            point_alias()
        if settings.exit_when_caught_up:
            log.info("caught up (%d records): stopping as asked", progress.total)
            worker.stop()

    worker.on_caught_up = caught_up
    log.info("encoder metrics on %s:%d/metrics", settings.metrics_host, metrics_server.port)
    backfill_note = " (backfill: a new group replays from the earliest offset)" if settings.backfill else ""
    log.info("consumer group %s%s", group_id, backfill_note)
    return EncoderService(settings, worker, metrics_server)


def _progress_logger(worker: EncoderWorker) -> Callable[[BatchOutcome], None]:
    """Log a backfill's progress every ~5 s (the gauge vitrine_encoder_catch_up_ratio has it always)."""
    started = time.monotonic()
    last = [started]

    def log_progress(_: BatchOutcome) -> None:
        now = time.monotonic()
        if now - last[0] < 5 or worker.catch_up is None:
            return
        last[0] = now
        done, total = worker.catch_up.done, worker.catch_up.total
        rate = done / (now - started)
        eta = (total - done) / rate if rate > 0 else float("inf")
        log.info(
            "backfill %d/%d records (%.0f%%), %.0f records/s, about %.0fs left",
            done,
            total,
            100 * done / max(total, 1),
            rate,
            eta,
        )

    return log_progress


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
