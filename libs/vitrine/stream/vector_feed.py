"""Embedded mode: keep a replica's local index in step with the compacted catalog.vectors topic.

Every recommender replica reads all partitions (no consumer group: each replica needs every item),
from the beginning at start (Kafka is the source of truth, the shard is a cache), then follows the
log. `caught_up` is set once the replica has applied everything that existed when it started, which
is when it should report SERVING.

The encoder writes the topic in transactions, so the feed reads committed records only
(`isolation_level="read_committed"`, the default of `make_consumer`; a consumer reading uncommitted
records is refused): the batch of a fenced zombie encoder or of an aborted retry is never applied,
and the catch-up target is the last stable offset, not the high watermark.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from vitrine.index.port import VectorIndex
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.stream.kafka import require_read_committed
from vitrine.stream.records import decode_vector_change

log = logging.getLogger(__name__)


class VectorFeed:
    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        index: VectorIndex,
        metrics: RecommenderMetrics,
        model_version: str | None = None,
        poll_timeout_ms: int = 100,
        optimize_interval_s: float = 30.0,
    ) -> None:
        require_read_committed(consumer, "the vector feed's consumer")
        self.consumer = consumer
        self.topic = topic
        self.index = index
        self.metrics = metrics
        # vectors of another model version would not be comparable with this index: skip them
        self.model_version = model_version
        # the `model` label of this feed's series (a replica runs one feed per served model)
        self.model_label = model_version or topic
        self.poll_timeout_ms = poll_timeout_ms
        # an embedded engine has no background optimizer: without this, superseded points pile up
        # and new points are searched by brute force in the appendable segment
        self.optimize_interval_s = optimize_interval_s
        self._writes_since_optimize = 0
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"vector-feed-{self.topic}", daemon=True)
        self._thread.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self.caught_up.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            partitions = self._assign()
            targets = self.consumer.end_offsets(partitions)
            next_optimize = time.monotonic() + self.optimize_interval_s
            while not self._stop.is_set():
                polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=1000)
                for records in polled.values():
                    self._apply([r.value for r in records if r.value is not None])
                if not self.caught_up.is_set() and all(
                    self.consumer.position(tp) >= targets[tp] for tp in partitions
                ):
                    self._optimize()  # build the index before reporting ready: first queries are fast
                    self.caught_up.set()
                    log.info("vector feed caught up: %d live items", self.index.count())
                    next_optimize = time.monotonic() + self.optimize_interval_s
                elif (
                    self.caught_up.is_set()
                    and self._writes_since_optimize
                    and time.monotonic() >= next_optimize
                ):
                    self._optimize()
                    next_optimize = time.monotonic() + self.optimize_interval_s
                self._update_gauges(partitions)
        except BaseException as e:  # surfaced through health: a dead feed means a stale replica
            self.error = e
            log.exception("vector feed stopped")
        finally:
            self.consumer.close()

    def _assign(self) -> list[TopicPartition]:
        deadline = time.monotonic() + 30
        while not (ids := self.consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {self.topic} does not exist")
            time.sleep(0.2)
        partitions = [TopicPartition(self.topic, p) for p in sorted(ids)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)
        return partitions

    def _apply(self, values: list[bytes]) -> None:
        if not values:
            return
        records = [decode_vector_change(v) for v in values]
        if self.model_version is not None:
            records = [r for r in records if r.model_version == self.model_version]
        result = self.index.apply([r.change for r in records])
        self._writes_since_optimize += result.written + result.deleted
        if self.caught_up.is_set():  # replaying history says nothing about freshness
            now = datetime.now(UTC)
            freshness = self.metrics.freshness.labels(self.model_label)
            stale = set(result.stale_ids)
            for r in records:
                if r.product_id not in stale and r.event_time is not None:
                    freshness.observe(max(0.0, (now - r.event_time).total_seconds()))
        self.metrics.applied.labels(self.model_label, "upsert").inc(result.written)
        self.metrics.applied.labels(self.model_label, "delete").inc(result.deleted)
        self.metrics.feed_stale.labels(self.model_label).inc(result.stale)

    def _optimize(self) -> None:
        started = time.monotonic()
        self.index.optimize()
        log.debug(
            "optimized after %d writes in %.2fs", self._writes_since_optimize, time.monotonic() - started
        )
        self._writes_since_optimize = 0

    def _update_gauges(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self.metrics.feed_lag.labels(self.model_label, str(tp.partition)).set(
                    max(0, highwater - self.consumer.position(tp))
                )
