"""Prometheus metrics. Each service owns one registry (no global state), served on its own port.

Names follow Prometheus conventions (`vitrine_<component>_<what>_<unit>`); the dashboards in
deploy/grafana and the alert rules in deploy/prometheus use exactly these names.
"""

from __future__ import annotations

import errno
import platform
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from vitrine.errors import PortInUseError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_info(registry: CollectorRegistry, component: str) -> Gauge:
    """`vitrine_build_info{component, version, python, ...} 1`: what runs, for dashboards and upgrades."""
    gauge = Gauge(
        "vitrine_build_info",
        "Always 1; the labels say which vitrine and which key dependencies this process runs",
        ["component", "version", "python", "onnxruntime", "grpcio", "kafka_python", "qdrant_edge"],
        registry=registry,
    )
    gauge.labels(
        component,
        _version("vitrine"),
        platform.python_version(),
        _version("onnxruntime"),
        _version("grpcio"),
        _version("kafka-python"),
        _version("qdrant-edge-py"),
    ).set(1)
    return gauge


class EncoderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = build_info(r, "encoder")
        self.model_info = Gauge(
            "vitrine_encoder_model_info",
            "Always 1; the model this encoder runs: version, task, kind (trained, zero_data, untrained) "
            "and its consumer group",
            ["model", "task", "kind", "group"],
            registry=r,
        )
        self.consumed = Counter(
            "vitrine_encoder_events_consumed_total", "Catalogue events consumed", registry=r
        )
        self.encoded = Counter(
            "vitrine_encoder_items_encoded_total", "Products run through the item tower", registry=r
        )
        self.written = Counter(
            "vitrine_encoder_index_writes_total", "Changes acknowledged by the sink", ["op"], registry=r
        )
        self.stale = Counter(
            "vitrine_encoder_stale_dropped_total", "Events not newer than the indexed version", registry=r
        )
        self.dead_lettered = Counter(
            "vitrine_encoder_dead_lettered_total",
            "Events sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.batches = Counter("vitrine_encoder_batches_total", "Micro-batches processed", registry=r)
        self.batch_size = Histogram(
            "vitrine_encoder_batch_size", "Events per micro-batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.encode_seconds = Histogram(
            "vitrine_encoder_encode_seconds", "Item tower time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.write_seconds = Histogram(
            "vitrine_encoder_write_seconds", "Sink write time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.freshness = Histogram(
            "vitrine_encoder_event_to_written_seconds",
            "Catalogue event time to sink acknowledgement",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "vitrine_encoder_consumer_lag", "Records behind the log end", ["topic", "partition"], registry=r
        )
        self.retries = Counter(
            "vitrine_encoder_retries_total",
            "Batch writes or commits retried because the broker or the index was unavailable",
            registry=r,
        )
        self.transactions_aborted = Counter(
            "vitrine_encoder_transactions_aborted_total",
            "Batch transactions aborted (exactly-once mode), by reason: group_moved_on (this process "
            "was fenced as a zombie; the partitions' new owner replays the batch), error (retried) and "
            "producer_fenced (the producer was recreated; retried)",
            ["reason"],
            registry=r,
        )
        self.progress = Gauge(
            "vitrine_encoder_partition_progress_timestamp_seconds",
            "Unix time this encoder last committed records of the partition, or found nothing waiting "
            "in it (assignment counts as progress): more than a few minutes ago = the partition is stalled",
            ["topic", "partition"],
            registry=r,
        )
        self.isolated_batches = Counter(
            "vitrine_encoder_isolated_batches_total",
            "Batches processed record by record because one of their records failed (or they kept failing)",
            registry=r,
        )
        self.dead_letter_envelopes = Counter(
            "vitrine_encoder_dead_letter_envelopes_total",
            "Dead letters written as a bounded envelope because the record could not be written as it "
            "was, by why: too_large, unencodable_headers, rejected",
            ["why"],
            registry=r,
        )
        self.skipped = Counter(
            "vitrine_encoder_records_skipped_total",
            "Records skipped because not even their dead letter could be written (should stay 0)",
            registry=r,
        )
        self.catch_up = Gauge(
            "vitrine_encoder_catch_up_ratio",
            "Share of the records up to the log end at assignment that are done (a backfill's progress)",
            registry=r,
        )


class RecommenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = build_info(r, "recommender")
        self.model_info = Gauge(
            "vitrine_recommender_model_info",
            "Always 1 per served model: the name variants use, its version (the `model` label of the "
            "other per-model series), task and kind (trained, zero_data, untrained, index_only)",
            ["name", "model", "task", "kind"],
            registry=r,
        )
        self.requests = Counter(
            "vitrine_recommender_requests_total",
            "gRPC requests handled, by method, status code and experiment variant (a call that finished "
            "after its deadline counts as DEADLINE_EXCEEDED: its caller got that)",
            ["method", "code", "variant"],
            registry=r,
        )
        self.started = Counter(
            "vitrine_recommender_requests_started_total",
            "gRPC calls received, by method, counted on arrival before they wait for a handler thread; "
            "started minus handled (requests_total) = calls gRPC dropped before a handler ran (their "
            "deadline passed or the caller cancelled while they waited) plus those in flight",
            ["method"],
            registry=r,
        )
        self.latency = Histogram(
            "vitrine_recommender_request_seconds",
            "gRPC request latency",
            ["method", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.items = Gauge(
            "vitrine_recommender_index_items", "Live items in the local index", ["model"], registry=r
        )
        # every per-model series carries `model` (the model version, as on index_items): a replica
        # serving two models runs two feeds, and one series for both would hide the lagging one
        self.applied = Counter(
            "vitrine_recommender_vectors_applied_total",
            "Vector changes applied to the local index",
            ["model", "op"],
            registry=r,
        )
        self.feed_stale = Counter(
            "vitrine_recommender_vectors_stale_total",
            "Vector changes not newer than the local index",
            ["model"],
            registry=r,
        )
        self.feed_lag = Gauge(
            "vitrine_recommender_feed_lag",
            "Vector records behind the log end",
            ["model", "partition"],
            registry=r,
        )
        self.feed_rejected = Counter(
            "vitrine_recommender_vectors_rejected_total",
            "Records of a vectors topic skipped because they cannot be applied, by reason: undecodable, "
            "bad_vector, apply_failed",
            ["reason"],
            registry=r,
        )
        self.freshness = Histogram(
            "vitrine_recommender_event_to_indexed_seconds",
            "Catalogue event time to searchable in this replica",
            ["model"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        # (method, code, variant) -> the bound counter and histogram children: `labels()` validates,
        # joins and locks on every call, which cost more than the counting it guards (issue 19).
        # Bounded: methods and codes are fixed sets, variants come from the configuration.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe_request(self, method: str, code: str, variant: str, seconds: float) -> None:
        """Count and time one request under its method, status code name and variant."""
        key = (method, code, variant)
        children = self._request_children.get(key)
        if children is None:  # first of its kind; a concurrent first binds the same children
            children = (self.requests.labels(method, code, variant), self.latency.labels(method, variant))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class ImpressionMetrics:
    """The recommender's impression recording (vitrine.feedback.recorder), in the recommender's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.recorded = Counter(
            "vitrine_recommender_impressions_recorded_total",
            "Returned lists recorded on the interactions topic (acknowledged)",
            registry=r,
        )
        self.dropped = Counter(
            "vitrine_recommender_impressions_dropped_total",
            "Returned lists not recorded: buffer_full (the sender is behind) or send_failed",
            ["reason"],
            registry=r,
        )
        self.buffered = Gauge(
            "vitrine_recommender_impressions_buffered", "Lists waiting to be sent", registry=r
        )


class FeedbackMetrics:
    """The feedback service: processing of catalog.interactions (per instance) and the experiments'
    results (`vitrine_feedback_arm_*`, `vitrine_feedback_lift*`: computed from every partition's
    results, so every instance exports the same values; dashboards take `max` over instances)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "vitrine_feedback_records_consumed_total", "Interaction records consumed", registry=r
        )
        self.interactions = Counter(
            "vitrine_feedback_interactions_total", "Valid interactions by type", ["type"], registry=r
        )
        self.attribution = Counter(
            "vitrine_feedback_attribution_total",
            "What happened to each valid interaction: counted, organic, unknown_recommendation, "
            "outside_window, not_in_list, duplicate, repeat_click, not_randomised, late_impression",
            ["outcome"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "vitrine_feedback_dead_lettered_total",
            "Interactions sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.batches = Counter("vitrine_feedback_batches_total", "Batches committed", registry=r)
        self.retries = Counter(
            "vitrine_feedback_retries_total", "Batches retried after a Kafka error", registry=r
        )
        self.transactions_aborted = Counter(
            "vitrine_feedback_transactions_aborted_total",
            "Batch transactions aborted, by reason",
            ["reason"],
            registry=r,
        )
        self.lag = Gauge(
            "vitrine_feedback_consumer_lag", "Records behind the log end", ["topic", "partition"], registry=r
        )
        self.open_lists = Gauge(
            "vitrine_feedback_open_lists",
            "Impressions inside their attribution window (state held)",
            registry=r,
        )
        self.closed_lists = Counter(
            "vitrine_feedback_closed_lists_total", "Impressions whose attribution window closed", registry=r
        )
        self.restore_seconds = Histogram(
            "vitrine_feedback_restore_seconds",
            "Time to restore a partition's state from the changelog",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        arm = ["experiment", "variant", "placement"]
        self.arm_units = Gauge(
            "vitrine_feedback_arm_units", "Units (unit keys) with an impression", arm, registry=r
        )
        self.arm_impressions = Gauge("vitrine_feedback_arm_impressions", "Lists shown", arm, registry=r)
        self.arm_clicks = Gauge(
            "vitrine_feedback_arm_clicks", "Attributed clicks (distinct items per list)", arm, registry=r
        )
        self.arm_conversions = Gauge(
            "vitrine_feedback_arm_conversions", "Attributed purchases", arm, registry=r
        )
        self.arm_revenue = Gauge("vitrine_feedback_arm_revenue", "Attributed purchase value", arm, registry=r)
        self.arm_rate = Gauge(
            "vitrine_feedback_arm_rate",
            "Per-impression rate of a metric (ctr, conversion, revenue_per_impression) with its always-valid "
            "interval (bound: estimate, lower, upper)",
            [*arm, "metric", "bound"],
            registry=r,
        )
        self.lift = Gauge(
            "vitrine_feedback_lift",
            "Relative lift of a variant over the experiment's control, with its always-valid interval",
            [*arm, "metric", "bound"],
            registry=r,
        )
        self.p_value = Gauge(
            "vitrine_feedback_lift_p_value", "Always-valid p-value of no lift", [*arm, "metric"], registry=r
        )


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(
    registry: CollectorRegistry, port: int, addr: str = "0.0.0.0", setting: str = "the metrics port"
) -> MetricsServer:
    """Serve /metrics on addr:port (port 0 picks a free one; read it back from `.port`).

    A taken port raises `PortInUseError` naming `setting` (what to change), not a bare OSError."""
    try:
        server, thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        raise PortInUseError(
            f"cannot serve /metrics on {addr}:{port}: the address is in use (another process, e.g. a second "
            f"service on this host, listens there); choose another port with {setting}, or 0 for any free one"
        ) from e
    return MetricsServer(server, thread)
