"""Feedback service: wiring and lifecycle. Consumes catalog.interactions, keeps the experiments'
results exactly once (state changelog + results in Kafka transactions), exposes /metrics."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from types import FrameType

from kafka.errors import KafkaError

from vitrine.errors import ConfigError
from vitrine.feedback.attribution import AttributionConfig
from vitrine.feedback.pipeline import FeedbackPipeline, FeedbackTopics
from vitrine.feedback.results import ReportConfig
from vitrine.feedback.topics import ensure_feedback_topics
from vitrine.feedback.view import ResultsView
from vitrine.feedback.worker import FeedbackWorker
from vitrine.obs.metrics import FeedbackMetrics, MetricsServer, serve_metrics
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import FLUSHING_PRODUCER, KafkaSettings, make_consumer
from vitrine.stream.transactions import make_transactional_producer
from vitrine.stream.worker import BatchPolicy
from vitrine_services.feedback.settings import FeedbackSettings

log = logging.getLogger(__name__)


@dataclass
class FeedbackService:
    settings: FeedbackSettings
    worker: FeedbackWorker
    view: ResultsView
    metrics_server: MetricsServer

    def run(self) -> None:
        try:
            self.worker.run()
        finally:
            self.view.close()
            self.metrics_server.close()

    def stop(self) -> None:
        self.worker.stop()


def build_feedback(settings: FeedbackSettings) -> FeedbackService:
    kafka = KafkaSettings(
        settings.kafka_bootstrap_servers, client_id="vitrine-feedback", security=settings.kafka_security()
    )
    topics = FeedbackTopics(
        settings.interactions_topic,
        settings.dead_letter_topic,
        settings.resolved_changelog_topic(),
        settings.results_topic,
    )
    if settings.create_topics:
        partitions = ensure_feedback_topics(kafka, topics, settings.topic_partitions)
        log.info("%s has %d partitions (state in %s)", topics.interactions, partitions, topics.changelog)
    metrics = FeedbackMetrics()
    transactions = make_transactional_producer(
        kafka, settings.resolved_transactional_id(), settings.transaction_timeout_ms, **FLUSHING_PRODUCER
    )
    try:
        transactions.start()
    except KafkaError as e:
        raise ConfigError(
            f"cannot start a Kafka transaction ({type(e).__name__}: {e}); the feedback service counts "
            "exactly once through transactions and needs a broker that supports them"
        ) from e
    pipeline = FeedbackPipeline(
        transactions,
        KafkaDeadLetters(transactions, topics.dead_letters),
        topics,
        AttributionConfig(settings.attribution_window_s, settings.clock_skew_s, settings.lateness_s),
        results_interval_s=settings.results_interval_s,
        max_future_s=settings.max_future_s,
    )
    consumer = make_consumer(kafka, group_id=settings.group_id, max_poll_records=settings.max_batch)
    restore = make_consumer(kafka, group_id=None, client_id="vitrine-feedback-restore")
    worker = FeedbackWorker(
        consumer,
        restore,
        pipeline,
        transactions,
        metrics,
        BatchPolicy(settings.max_batch, settings.max_wait_ms),
    )
    view = ResultsView(
        make_consumer(kafka, group_id=None, client_id="vitrine-feedback-view"),
        topics.results,
        metrics,
        ReportConfig(alpha=settings.alpha, mixture_sd=settings.mixture_sd),
    ).start()
    metrics_server = serve_metrics(metrics.registry, settings.metrics_port)
    log.info(
        "feedback group %s, transactional.id %s, metrics on :%d/metrics",
        settings.group_id,
        transactions.transactional_id,
        metrics_server.port,
    )
    return FeedbackService(settings, worker, view, metrics_server)


def run_feedback(settings: FeedbackSettings) -> int:
    service = build_feedback(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight, committing, leaving the group", signum)
        service.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    service.run()
    return 0
