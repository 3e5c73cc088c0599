"""Prometheus metrics. Each service owns one registry (no global state), served on its own port.

Names follow Prometheus conventions (`vitrine_<component>_<what>_<unit>`); the dashboards in
deploy/grafana and the alert rules in deploy/prometheus use exactly these names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EncoderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
        self.requests = Counter(
            "vitrine_recommender_requests_total",
            "gRPC requests by method, status code and experiment variant",
            ["method", "code", "variant"],
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
        self.applied = Counter(
            "vitrine_recommender_vectors_applied_total",
            "Vector changes applied to the local index",
            ["op"],
            registry=r,
        )
        self.feed_stale = Counter(
            "vitrine_recommender_vectors_stale_total",
            "Vector changes not newer than the local index",
            registry=r,
        )
        self.feed_lag = Gauge(
            "vitrine_recommender_feed_lag", "Vector records behind the log end", ["partition"], registry=r
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
            buckets=FRESHNESS_BUCKETS,
            registry=r,
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


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve /metrics on addr:port (port 0 picks a free one; read it back from `.port`)."""
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
