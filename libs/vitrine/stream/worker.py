"""The encoder's consume loop: micro-batches, commit after acknowledgement, graceful stop.

Invariant that makes rebalances safe without extra bookkeeping: every record handed to the pipeline
is written, acknowledged and its offset committed before the next `poll()`. Partitions can only be
revoked inside `poll()`, so at revocation nothing processed is uncommitted, and a partition's next
owner starts exactly after what this worker finished. (kafka-python 3 runs rebalance listeners on
its IO thread, where a blocking commit is not allowed: one more reason to commit in the loop.) A
crash between write and commit replays the batch; the version guard makes the replay harmless
(at-least-once delivery, exactly-once state).

With a `TransactionalProducer` (exactly-once mode, the default for the vectors topic) each batch is
one Kafka transaction: its vectors and dead letters are written, its offsets are added with the
consumer's group metadata (`send_offsets_to_transaction`, fenced by generation as in KIP-447) and the
transaction commits, all or nothing. A process paused past its session timeout (a zombie) finds its
offsets refused when it resumes; it aborts, so its possibly stale records are never visible to
`read_committed` readers, and the partitions' new owner replays the batch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

from vitrine.errors import IndexBackendError
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.batch_policy import BatchPolicy
from vitrine.stream.kafka_compat import request_rejoin, resume_interrupted_join
from vitrine.stream.pipeline import BatchOutcome, EncoderPipeline
from vitrine.stream.records import SourceRecord
from vitrine.stream.transactions import GROUP_MOVED_ON, TransactionalProducer

log = logging.getLogger(__name__)

__all__ = ["TRANSIENT", "BatchPolicy", "CatchUp", "EncoderWorker"]

# Failures of the infrastructure, worth waiting out; anything else is a bug and stops the worker.
TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, IndexBackendError, TimeoutError, ConnectionError)


class _Rebalance(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread: only notes the change. Nothing processed is uncommitted at
    revocation (see the module docstring); after an assignment the worker thread lets the sink catch
    up with what the previous owners wrote (`EncoderPipeline.catch_up`), before it processes anything
    of the new partitions."""

    def __init__(self, worker: EncoderWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: object) -> None:
        log.info("partitions revoked: %s", revoked)
        for tp in revoked or ():  # type: ignore[attr-defined]
            # stop exporting lag for partitions another replica now owns (a local, non-blocking call)
            with contextlib.suppress(KeyError):
                self.worker.metrics.lag.remove(tp.topic, str(tp.partition))

    def on_partitions_assigned(self, assigned: object) -> None:
        log.info("partitions assigned: %s", assigned)
        self.worker.assignment_changed.set()


@dataclass
class CatchUp:
    """Progress towards the log end offsets seen when partitions were assigned (a replay's target)."""

    targets: dict[TopicPartition, int]
    positions: dict[TopicPartition, int]

    @property
    def done(self) -> int:
        return sum(min(self.positions.get(tp, 0), end) for tp, end in self.targets.items())

    @property
    def total(self) -> int:
        return sum(self.targets.values())

    @property
    def caught_up(self) -> bool:
        return all(self.positions.get(tp, 0) >= end for tp, end in self.targets.items())


class EncoderWorker:
    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        pipeline: EncoderPipeline,
        policy: BatchPolicy | None = None,
        metrics: EncoderMetrics | None = None,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        on_caught_up: Callable[[CatchUp], None] | None = None,
        transactions: TransactionalProducer | None = None,
    ) -> None:
        self.consumer = consumer
        # the producer of the sink and the dead letters, when they write in transactions
        self.transactions = transactions
        self.topic = topic
        self.pipeline = pipeline
        self.policy = policy or BatchPolicy()
        self.metrics = metrics or pipeline.metrics
        self.on_batch = on_batch
        self.on_caught_up = on_caught_up
        self.stop_event = threading.Event()
        self.catch_up: CatchUp | None = None
        self.assignment_changed = threading.Event()
        self._caught_up_reported = False
        self._batch_group: ConsumerGroupMetadata | None = None

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit and leave the group."""
        self.stop_event.set()

    def run(self) -> None:
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        log.info("encoder consuming %s", self.topic)
        try:
            while not self.stop_event.is_set():
                # A process paused (GC, SIGSTOP, a starved VM) past the session timeout may have lost
                # its partitions without knowing yet, and poll() can still hand it records fetched
                # before: a batch that took too long since this moment makes the pipeline catch up
                # with what the new owner wrote before it writes, so those records are recognised as
                # stale instead of overwriting newer vectors. (Full zombie fencing needs transactions.)
                fetched_at = time.monotonic()
                batch = self._next_batch()
                self._resume_interrupted_rebalance()
                if self.assignment_changed.is_set():
                    self.assignment_changed.clear()
                    self.pipeline.catch_up()
                if batch:
                    if self.transactions is not None:
                        outcome = self._process_in_transaction(batch, self.transactions, fetched_at)
                    else:
                        outcome = self._process_until_done(batch, fetched_at)
                        if outcome is not None:
                            self._commit(batch)
                    if outcome is None:
                        break  # stopped while the sink was down: not committed, so replayed later
                    if self.on_batch is not None:
                        self.on_batch(outcome)
                self._update_lag()  # every loop, so a stalled stream shows its lag growing
                self._track_catch_up()
        finally:
            # close() leaves the group at once, so the partitions move without a session timeout.
            self.consumer.close(autocommit=False)
            self.pipeline.sink.close()
            if self.transactions is not None:
                self.transactions.close()  # aborts a transaction left open by a stop mid-retry
            log.info("encoder stopped")

    def _resume_interrupted_rebalance(self) -> None:
        """A poll() timeout can leave a rebalance unfinished in kafka-python 3.0.12, and the consumer
        without partitions (`kafka_compat.resume_interrupted_join`): finish it at the next poll()."""
        if resume_interrupted_join(self.consumer):
            log.info("resuming a rebalance that a poll() timeout interrupted")

    def _process_until_done(
        self, batch: list[SourceRecord], fetched_at: float | None = None
    ) -> BatchOutcome | None:
        """Process a batch, retrying with capped exponential backoff while the broker or the index is
        unavailable (a restart, a network blip): the batch is not committed, so retrying it is safe,
        and crashing would only replay it after a restart anyway. None if stopped meanwhile."""
        delay = self.policy.retry_backoff_ms / 1000
        while True:
            try:
                return self.pipeline.process(batch, fetched_at=fetched_at)
            except TRANSIENT as e:
                self.metrics.retries.inc()
                log.warning(
                    "batch of %d failed (%s: %s); retrying in %.1fs", len(batch), type(e).__name__, e, delay
                )
                if self.stop_event.wait(delay):
                    return None
                delay = min(delay * 2, self.policy.max_retry_backoff_ms / 1000)

    def _process_in_transaction(
        self, batch: list[SourceRecord], txn: TransactionalProducer, fetched_at: float | None = None
    ) -> BatchOutcome | None:
        """Write the batch and commit its offsets in one transaction, retrying with capped backoff
        while Kafka or the index is unavailable (an aborted transaction left nothing visible, so a
        retry is safe). If the group moved on (this process was paused past its session timeout, or
        a rebalance bumped the generation meanwhile) the broker refuses the offsets: the transaction
        is aborted and the batch left to the partitions' owner. None if stopped meanwhile."""
        group = self._batch_group
        if group is None or group.generation_id < 0:
            # No generation to prove membership with: the coordinator would accept the offsets of a
            # transaction without one (older clients send none), so never commit such a batch.
            self._rewind(batch)
            self._rejoin()
            log.warning("batch of %d fetched outside a group generation: left to replay", len(batch))
            return BatchOutcome()
        delay = self.policy.retry_backoff_ms / 1000
        while True:
            try:
                txn.begin()
                outcome = self.pipeline.process(batch, record_metrics=False, fetched_at=fetched_at)
                # offsets under the generation the batch was fetched in: if the group has moved on
                # since (this process paused past its session timeout, a rebalance), the coordinator
                # refuses them and the transaction must abort (KIP-447)
                txn.commit(self._offsets(batch), group)
                self.pipeline.record_metrics(outcome)
                return outcome
            except GROUP_MOVED_ON as e:
                self._abort(txn, "group_moved_on")
                self._rewind(batch)
                self._rejoin()
                log.warning(
                    "batch of %d aborted: the group moved on (%s: %s); its partitions' owner replays it",
                    len(batch),
                    type(e).__name__,
                    e,
                )
                return BatchOutcome()
            except TRANSIENT as e:
                fatal = txn.is_fatal(e)
                self._abort(txn, "producer_fenced" if fatal else "error", recreate=fatal)
                self.metrics.retries.inc()
                log.warning(
                    "batch of %d aborted (%s: %s)%s; retrying in %.1fs",
                    len(batch),
                    type(e).__name__,
                    e,
                    ", producer recreated" if fatal else "",
                    delay,
                )
                if self.stop_event.wait(delay):
                    return None
                delay = min(delay * 2, self.policy.max_retry_backoff_ms / 1000)

    def _abort(self, txn: TransactionalProducer, reason: str, recreate: bool = False) -> None:
        """Abort (or recreate a producer beyond use); a failure here is left to the next begin()."""
        self.metrics.transactions_aborted.labels(reason).inc()
        try:
            if recreate:
                txn.recreate()
            else:
                txn.abort()
        except TRANSIENT as e:
            log.warning("aborting the transaction failed (%s: %s)", type(e).__name__, e)

    def _rewind(self, batch: list[SourceRecord]) -> None:
        """Point the consumer back at the start of an aborted batch. If the rejoin gives this process
        the same partitions again, kafka-python keeps their positions (past the batch): without the
        rewind the aborted batch would be skipped. Partitions it loses are replayed by their owner."""
        assigned = self.consumer.assignment()
        for tp, first in self._first_offsets(batch).items():
            if tp in assigned:
                with contextlib.suppress(Exception):  # revoked meanwhile: the new owner replays it
                    self.consumer.seek(tp, first)

    def _rejoin(self) -> None:
        """The coordinator refused this member's generation: rejoin the group at the next poll()
        (which joins before it fetches), as kafka-python does itself when a plain offset commit is
        refused. Otherwise the consumer would go on fetching under the stale generation until its
        heartbeat notices, up to heartbeat.interval.ms later, and each of those batches would be
        encoded, written and aborted in vain."""
        request_rejoin(self.consumer)

    @staticmethod
    def _first_offsets(batch: list[SourceRecord]) -> dict[TopicPartition, int]:
        first: dict[TopicPartition, int] = {}
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in first or r.offset < first[tp]:
                first[tp] = r.offset
        return first

    @staticmethod
    def _offsets(batch: list[SourceRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset <= r.offset:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        return offsets

    def _next_batch(self) -> list[SourceRecord]:
        policy = self.policy
        batch: list[SourceRecord] = []
        deadline: float | None = None
        while len(batch) < policy.max_records and not self.stop_event.is_set():
            if deadline is None:
                timeout_ms = policy.poll_timeout_ms
            else:
                timeout_ms = int((deadline - time.monotonic()) * 1000)
                if timeout_ms <= 0:
                    break
            polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=policy.max_records - len(batch))
            for records in polled.values():
                batch.extend(
                    SourceRecord(
                        r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers or ())
                    )
                    for r in records
                )
            if batch and deadline is None:
                deadline = time.monotonic() + policy.max_wait_ms / 1000
                # the membership these records were fetched under: the batch's transaction commits
                # its offsets under it, so a rebalance or an eviction since then fences the batch
                self._batch_group = self.consumer.group_metadata()
            if not batch:
                break  # nothing arrived within poll_timeout: give the stop flag a look
        return batch

    def _commit(self, batch: list[SourceRecord]) -> None:
        offsets = self._offsets(batch)
        delay = self.policy.retry_backoff_ms / 1000
        while True:
            try:
                self.consumer.commit(offsets)
                return
            except CommitFailedError as e:
                # the group rebalanced while this batch was processed (e.g. this process was paused
                # past the session timeout): the partitions' new owner replays it, harmlessly
                log.warning("offsets not committed, the group moved on: %s", e)
                return
            except TRANSIENT as e:
                self.metrics.retries.inc()
                log.warning("offset commit failed (%s); retrying in %.1fs", e, delay)
                if self.stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.policy.max_retry_backoff_ms / 1000)

    def _track_catch_up(self) -> None:
        assignment = self.consumer.assignment()
        if not assignment:
            return
        if self.catch_up is None or set(self.catch_up.targets) != assignment:
            # (re)assigned: the target is the log end as of now, like a replay's finishing line
            self.catch_up = CatchUp(self.consumer.end_offsets(list(assignment)), {})
            self._caught_up_reported = False
        self.catch_up.positions = {tp: self.consumer.position(tp) for tp in assignment}
        self.metrics.catch_up.set(self.catch_up.done / self.catch_up.total if self.catch_up.total else 1.0)
        if self.catch_up.caught_up and not self._caught_up_reported:
            self._caught_up_reported = True
            log.info(
                "caught up: %d records up to the log end of %d partitions",
                self.catch_up.total,
                len(assignment),
            )
            if self.on_caught_up is not None:
                self.on_caught_up(self.catch_up)

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - self.consumer.position(tp))
            )
