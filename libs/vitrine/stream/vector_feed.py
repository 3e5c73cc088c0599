"""Embedded mode: keep a replica's local index in step with the compacted catalog.vectors topic.

Every recommender replica reads all partitions (no consumer group: each replica needs every item),
from the beginning at start (Kafka is the source of truth, the shard is a cache), or from the offsets
its reused shard had applied (`resume_from`), then follows the log. `caught_up` is set once the
replica has applied everything that existed when it started, which is when it should report SERVING.
Partitions added to the topic while it runs are found (every `partition_refresh_s`) and read from
their beginning. After each periodic optimize (a flush) and at stop, `on_checkpoint` gets the offsets
applied so far, which a restart resumes from.

The encoder writes the topic in transactions, so the feed reads committed records only
(`isolation_level="read_committed"`, the default of `make_consumer`; a consumer reading uncommitted
records is refused): the batch of a fenced zombie encoder or of an aborted retry is never applied,
and the catch-up target is the last stable offset, not the high watermark.

No record stops the feed: one that cannot be decoded, whose vector does not fit the index, or that the
index refuses is skipped, logged with its partition and offset and counted in
`vitrine_recommender_vectors_rejected_total{reason}`, and the feed goes on. Only an index that refuses
every record of a batch (a broken engine, a full disk) stops it: the replica is then stale, and
reports it (the service exits, and its orchestrator restarts it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from vitrine.errors import IndexBackendError
from vitrine.index.port import IndexedItem, VectorIndex, WriteResult
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.stream.failures import describe
from vitrine.stream.kafka import require_read_committed
from vitrine.stream.records import VectorRecord, decode_vector_change

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
        resume_from: Mapping[int, int] | None = None,
        on_checkpoint: Callable[[dict[int, int]], None] | None = None,
        partition_refresh_s: float = 30.0,
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
        self.resume_from = dict(resume_from or {})
        self.on_checkpoint = on_checkpoint
        self.partition_refresh_s = partition_refresh_s
        self.partitions: list[TopicPartition] = []
        self._targets: dict[TopicPartition, int] = {}
        self._left: int | None = None
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"vector-feed-{self.topic}", daemon=True)
        self._thread.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self.caught_up.wait(timeout_s)

    def records_to_catch_up(self) -> int | None:
        """Records still to apply before `caught_up` (None until the feed has looked at the topic).
        Kept by the feed's own thread: a kafka-python consumer must not be called from another."""
        return self._left

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            partitions = self._assign()
            self._targets = targets = self.consumer.end_offsets(partitions)
            next_optimize = time.monotonic() + self.optimize_interval_s
            next_refresh = time.monotonic() + self.partition_refresh_s
            while not self._stop.is_set():
                polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=1000)
                for records in polled.values():
                    self._apply([r for r in records if r.value is not None])
                if not self.caught_up.is_set():
                    self._left = sum(max(0, end - self.consumer.position(tp)) for tp, end in targets.items())
                if not self.caught_up.is_set() and self._left == 0:
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
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.partition_refresh_s
                    self._add_new_partitions()
                self._update_gauges(self.partitions)
            self._checkpoint(flush=True)
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
        for tp in partitions:
            if tp.partition in self.resume_from:
                self.consumer.seek(tp, self.resume_from[tp.partition])
        if self.resume_from:
            log.info("vector feed resumes %s from the offsets its shard had applied", self.topic)
        self.partitions = partitions
        return partitions

    def _add_new_partitions(self) -> None:
        """Partitions added to the topic since: assign them too, from their beginning (changing the
        assignment resets positions in kafka-python, so the others are put back where they were)."""
        ids = self.consumer.partitions_for_topic(self.topic) or set()
        new = [
            TopicPartition(self.topic, p)
            for p in sorted(ids)
            if TopicPartition(self.topic, p) not in self.partitions
        ]
        if not new:
            return
        positions = {tp: self.consumer.position(tp) for tp in self.partitions}
        self.partitions = [*self.partitions, *new]
        self.consumer.assign(self.partitions)
        for tp, position in positions.items():
            self.consumer.seek(tp, position)
        self.consumer.seek_to_beginning(*new)
        log.info(
            "vector feed: %d partition(s) added to %s, reading them from the beginning", len(new), self.topic
        )

    def _checkpoint(self, flush: bool = False) -> None:
        """Tell the owner the offsets applied so far (after a flush: never ahead of the shard)."""
        if self.on_checkpoint is None or not self.partitions:
            return
        if flush:
            self.index.flush()
        self.on_checkpoint({tp.partition: self.consumer.position(tp) for tp in self.partitions})

    def _apply(self, raw: list[Any]) -> None:
        """Apply consumed records (kafka-python ConsumerRecords); skip the ones that cannot be."""
        if not raw:
            return
        records = [r for r in (self._decoded(x) for x in raw) if r is not None]
        if self.model_version is not None:
            records = [r for r in records if r.model_version == self.model_version]
        result = self._apply_isolating(records)
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

    def _decoded(self, record: Any) -> VectorRecord | None:
        try:
            decoded = decode_vector_change(record.value)
        except Exception as e:  # not an ItemVector (another producer, corruption): skip it
            self._reject(record, "undecodable", describe(e, 200))
            return None
        change = decoded.change
        if isinstance(change, IndexedItem):
            vector = change.vector
            if vector.shape != (self.index.dim,) or not np.all(np.isfinite(vector)):
                self._reject(
                    record, "bad_vector", f"vector of shape {vector.shape} for an index of {self.index.dim}"
                )
                return None
        return decoded

    def _apply_isolating(self, records: list[VectorRecord]) -> WriteResult:
        """Apply the batch; if the index refuses it, apply record by record and skip what it refuses.
        If it refuses every one, the index itself is broken: raise (the feed stops, health reports it)."""
        try:
            return self.index.apply([r.change for r in records])
        except IndexBackendError as batch_error:
            if len(records) == 1:
                self._reject_vector(records[0], batch_error)
                return WriteResult()
            log.warning(
                "applying %d vector changes failed (%s); applying one by one", len(records), batch_error
            )
        total = WriteResult()
        failed: list[BaseException] = []
        for r in records:
            try:
                result = self.index.apply([r.change])
            except IndexBackendError as e:
                failed.append(e)
                self._reject_vector(r, e)
                continue
            total.written += result.written
            total.deleted += result.deleted
            total.stale += result.stale
            total.stale_ids.extend(result.stale_ids)
        if failed and len(failed) == len(records):
            raise failed[0]
        return total

    def _reject_vector(self, record: VectorRecord, error: BaseException) -> None:
        self.metrics.feed_rejected.labels("apply_failed").inc()
        log.error(
            "vector of %s@%d skipped: the index refused it (%s)",
            record.product_id[:100],
            record.version,
            describe(error, 300),
        )

    def _reject(self, record: Any, reason: str, detail: str) -> None:
        self.metrics.feed_rejected.labels(reason).inc()
        log.error(
            "%s[%s]@%s skipped (%s): %s",
            getattr(record, "topic", self.topic),
            getattr(record, "partition", "?"),
            getattr(record, "offset", "?"),
            reason,
            detail,
        )

    def _optimize(self) -> None:
        started = time.monotonic()
        self.index.optimize()  # flushes: what was applied so far is on disk
        self._checkpoint()
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
