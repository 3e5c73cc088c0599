"""The feedback service's consume loop: exactly once across restarts, rebalances and zombies.

Each batch is one Kafka transaction, as in the encoder (`vitrine.stream.worker`): the state changes
(changelog), the arm results that are due, the dead letters and the consumed offsets of
catalog.interactions, with the consumer's group metadata (KIP-447 fencing). A partition's state is the
changelog partition of the same number read from the start (`read_committed`), which is exactly what
its committed offsets left: so after a crash (kill -9 included), a rebalance or an aborted batch, the
worker restores the partition and seeks it back to its committed offset, and nothing is lost or
counted twice. Restores happen on the worker thread, never in the rebalance listener (kafka-python 3
runs it on its IO thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.structs import ConsumerGroupMetadata, TopicPartition

from vitrine.feedback.changelog import restore_record
from vitrine.feedback.pipeline import FeedbackOutcome, FeedbackPipeline
from vitrine.obs.metrics import FeedbackMetrics
from vitrine.stream.failures import BATCH_RETRIED as TRANSIENT
from vitrine.stream.kafka import require_read_committed
from vitrine.stream.kafka_compat import request_rejoin
from vitrine.stream.records import SourceRecord
from vitrine.stream.transactions import GROUP_MOVED_ON, TransactionalProducer
from vitrine.stream.worker import (
    BatchPolicy,
    batch_offsets,
    collect_batch,
    first_offsets,
    resume_interrupted_rebalance,
)

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    """On kafka-python's IO thread: only note that the assignment changed (the worker restores)."""

    def __init__(self, changed: threading.Event) -> None:
        self.changed = changed

    def on_partitions_revoked(self, revoked: object) -> None:
        self.changed.set()

    def on_partitions_assigned(self, assigned: object) -> None:
        log.info("partitions assigned: %s", assigned)
        self.changed.set()


class FeedbackWorker:
    def __init__(
        self,
        consumer: KafkaConsumer,
        restore_consumer: KafkaConsumer,
        pipeline: FeedbackPipeline,
        transactions: TransactionalProducer,
        metrics: FeedbackMetrics,
        policy: BatchPolicy | None = None,
        on_batch: Callable[[FeedbackOutcome], None] | None = None,
    ) -> None:
        require_read_committed(restore_consumer, "the feedback state's restore consumer")
        self.consumer = consumer
        self.restore_consumer = restore_consumer
        self.pipeline = pipeline
        self.topics = pipeline.topics
        self.transactions = transactions
        self.metrics = metrics
        self.policy = policy or BatchPolicy(max_records=1000, max_wait_ms=50)
        self.on_batch = on_batch
        self.stop_event = threading.Event()
        self._assignment_changed = threading.Event()
        self._batch_group: ConsumerGroupMetadata | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        self.transactions.start()  # fences (and aborts the open transaction of) a previous incarnation
        self.consumer.subscribe([self.topics.interactions], listener=_Rebalance(self._assignment_changed))
        log.info("feedback consuming %s", self.topics.interactions)
        try:
            while not self.stop_event.is_set():
                batch = self._next_batch()
                resume_interrupted_rebalance(self.consumer)
                if self._assignment_changed.is_set():
                    self._assignment_changed.clear()
                    # records fetched around a rebalance are refetched once the states are in place
                    self._rewind(batch)
                    try:
                        self._sync_states()
                    except TRANSIENT as e:  # a partition not restored yet is tried again
                        log.warning(
                            "restoring partition state failed (%s: %s); retrying", type(e).__name__, e
                        )
                        self._assignment_changed.set()
                        self.stop_event.wait(self.policy.retry_backoff_ms / 1000)
                    continue
                if batch:
                    outcome = self._process_in_transaction(batch)
                    if outcome is None:
                        break
                    if self.on_batch is not None:
                        self.on_batch(outcome)
                self._update_lag()
        finally:
            self.consumer.close(autocommit=False)
            self.restore_consumer.close()
            self.transactions.close()
            log.info("feedback stopped")

    # -- states ----------------------------------------------------------------------------------------

    def _sync_states(self) -> None:
        """Drop the states of revoked partitions; restore those of new ones (and seek them to their
        committed offsets, which is where their restored state stands)."""
        assigned = {tp.partition for tp in self.consumer.assignment()}
        for partition in list(self.pipeline.states):
            if partition not in assigned:
                self.pipeline.drop(partition)
                with contextlib.suppress(KeyError):
                    self.metrics.lag.remove(self.topics.interactions, str(partition))
        for partition in sorted(assigned - set(self.pipeline.states)):
            self._restore(partition)
        self.metrics.open_lists.set(sum(len(s.lists) for s in self.pipeline.states.values()))

    def _restore(self, partition: int) -> None:
        started = time.perf_counter()
        state = self.pipeline.new_state()
        tp = TopicPartition(self.topics.changelog, partition)
        consumer = self.restore_consumer
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        read = 0
        deadline = time.monotonic() + 600
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"restoring {tp} took longer than 600 s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    restore_record(state, r.key, r.value)
                    read += 1
        state.restored()
        self.pipeline.adopt(partition, state)
        source = TopicPartition(self.topics.interactions, partition)
        committed = self.consumer.committed(source)
        if committed is None:
            self.consumer.seek_to_beginning(source)
        else:
            self.consumer.seek(source, committed)
        elapsed = time.perf_counter() - started
        self.metrics.restore_seconds.observe(elapsed)
        log.info(
            "restored partition %d: %d changelog records, %d open lists, %d units, offset %s (%.2fs)",
            partition,
            read,
            len(state.lists),
            len(state.units),
            committed,
            elapsed,
        )

    def _forget(self, batch: list[SourceRecord]) -> None:
        """An aborted batch left its partitions' states dirty: drop them; `_sync_states` restores them
        and seeks them back to their committed offsets."""
        for partition in {r.partition for r in batch}:
            self.pipeline.drop(partition)

    # -- a batch ---------------------------------------------------------------------------------------

    def _process_in_transaction(self, batch: list[SourceRecord]) -> FeedbackOutcome | None:
        group = self._batch_group
        if group is None or group.generation_id < 0:
            self._rewind(batch)
            request_rejoin(self.consumer)
            return FeedbackOutcome()
        txn = self.transactions
        delay = self.policy.retry_backoff_ms / 1000
        while True:
            try:
                txn.begin()
                outcome = self.pipeline.process(batch, self._caught_up(batch))
                txn.flush()
                txn.commit(batch_offsets(batch), group)
                self._record(outcome)
                return outcome
            except GROUP_MOVED_ON as e:
                self._abort("group_moved_on")
                self._forget(batch)
                request_rejoin(self.consumer)
                log.warning("batch of %d aborted: the group moved on (%s)", len(batch), e)
                self._assignment_changed.set()
                return FeedbackOutcome()
            except TRANSIENT as e:
                fatal = txn.is_fatal(e)
                self._abort("producer_fenced" if fatal else "error", recreate=fatal)
                self._forget(batch)
                self.metrics.retries.inc()
                log.warning(
                    "batch of %d aborted (%s: %s); retrying in %.1fs", len(batch), type(e).__name__, e, delay
                )
                if self.stop_event.wait(delay):
                    return None
                try:
                    self._sync_states()  # restore the forgotten partitions, back at their committed offsets
                except TRANSIENT as restore_error:
                    log.warning("restore failed (%s); retrying", restore_error)
                    delay = min(delay * 2, self.policy.max_retry_backoff_ms / 1000)
                    continue
                return FeedbackOutcome()  # the loop polls the batch again

    def _abort(self, reason: str, recreate: bool = False) -> None:
        self.metrics.transactions_aborted.labels(reason).inc()
        try:
            if recreate:
                self.transactions.recreate()
            else:
                self.transactions.abort()
        except TRANSIENT as e:
            log.warning("aborting the transaction failed (%s: %s)", type(e).__name__, e)

    def _caught_up(self, batch: list[SourceRecord]) -> Callable[[int], bool]:
        last: dict[int, int] = {}
        for r in batch:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)

        def caught_up(partition: int) -> bool:
            high = self.consumer.highwater(TopicPartition(self.topics.interactions, partition))
            return high is None or last.get(partition, -1) + 1 >= high

        return caught_up

    def _record(self, out: FeedbackOutcome) -> None:
        m = self.metrics
        m.consumed.inc(out.consumed)
        for kind, n in out.by_type.items():
            m.interactions.labels(kind).inc(n)
        for what, n in out.attribution.items():
            m.attribution.labels(what).inc(n)
        for reason, n in out.dead_lettered.items():
            m.dead_lettered.labels(reason).inc(n)
        m.batches.inc()
        m.closed_lists.inc(out.closed)
        m.open_lists.set(sum(len(s.lists) for s in self.pipeline.states.values()))

    def _rewind(self, batch: list[SourceRecord]) -> None:
        assigned = self.consumer.assignment()
        for tp, offset in first_offsets(batch).items():
            if tp in assigned:
                with contextlib.suppress(Exception):
                    self.consumer.seek(tp, offset)

    def _next_batch(self) -> list[SourceRecord]:
        batch, group = collect_batch(
            self.consumer, self.policy, self.stop_event, self._assignment_changed.is_set
        )
        if group is not None:
            self._batch_group = group
        return batch

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - self.consumer.position(tp))
                )
