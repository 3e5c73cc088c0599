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
from kafka.errors import CommitFailedError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.batch_policy import BatchPolicy
from vitrine.stream.failures import FailureKind, classify, describe, is_transient
from vitrine.stream.kafka_compat import request_rejoin, resume_interrupted_join
from vitrine.stream.pipeline import BatchOutcome, EncoderPipeline
from vitrine.stream.records import SourceRecord
from vitrine.stream.transactions import GROUP_MOVED_ON, TransactionalProducer

log = logging.getLogger(__name__)

__all__ = ["WRITE_FAILED", "BatchPolicy", "CatchUp", "EncoderWorker"]

# The reason of a record dead-lettered because writing it failed for what it holds.
WRITE_FAILED = "write_failed"


class _Isolate(Exception):
    """The batch failed for one of its records (or kept failing): process it record by record."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


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
            # stop exporting lag and progress for partitions another replica now owns (local calls)
            for gauge in (self.worker.metrics.lag, self.worker.metrics.progress):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp.topic, str(tp.partition))
            self.worker._progress_seen.discard(tp)

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
        self._progress_seen: set[TopicPartition] = set()

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
                    outcome = self._process(batch, fetched_at)
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
        resume_interrupted_rebalance(self.consumer)

    def _process(self, batch: list[SourceRecord], fetched_at: float) -> BatchOutcome | None:
        """Write and commit the batch; None if stopped meanwhile (nothing committed: replayed later).

        Failures are classified (`vitrine.stream.failures`): a transient one is retried with capped
        backoff, up to `max_batch_attempts` times for the whole batch; then, or at once for a failure
        caused by what a record holds, the batch is processed record by record, and a record that
        fails for what it holds is dead-lettered (`write_failed`) so that its partition goes on."""
        try:
            return self._attempt(batch, fetched_at, self.policy.max_batch_attempts)
        except _Isolate as e:
            log.warning("batch of %d failed (%s); processing it record by record", len(batch), e)
            self.metrics.isolated_batches.inc()
            return self._isolate(batch, fetched_at)

    def _isolate(self, batch: list[SourceRecord], fetched_at: float) -> BatchOutcome | None:
        total = BatchOutcome()
        for i, record in enumerate(batch):
            try:
                outcome = self._attempt([record], fetched_at, attempts=None)
            except _Isolate as e:
                outcome = self._dead_letter_failed(record, e.cause, fetched_at)
            if outcome is None:
                return None
            if outcome.fenced:
                self._rewind(batch[i:])  # the rest of the batch belongs to the partitions' new owner
                return total
            total.add(outcome)
        return total

    def _dead_letter_failed(
        self, record: SourceRecord, cause: BaseException, fetched_at: float
    ) -> BatchOutcome | None:
        """The record can never be written: dead-letter it (its dead letter bounded as an envelope
        if need be). If even that keeps failing for what it holds, skip it, loudly."""
        detail = describe(cause)
        log.error(
            "%s[%d]@%d cannot be written (%s): dead-lettering it",
            record.topic,
            record.partition,
            record.offset,
            detail,
        )
        for _ in range(3):
            try:
                return self._attempt([record], fetched_at, None, dead_letter=(WRITE_FAILED, detail))
            except _Isolate as e:
                cause = e.cause
        log.error(
            "%s[%d]@%d skipped: not even its dead letter can be written (%s)",
            record.topic,
            record.partition,
            record.offset,
            describe(cause),
        )
        self.metrics.skipped.inc()
        if self.transactions is None:
            self._commit([record])
        return BatchOutcome(consumed=1)

    def _attempt(
        self,
        records: list[SourceRecord],
        fetched_at: float,
        attempts: int | None,
        dead_letter: tuple[str, str] | None = None,
    ) -> BatchOutcome | None:
        """Process `records` (or only dead-letter them, `dead_letter=(reason, detail)`) and commit
        their offsets, in a transaction when there is one. Transient failures are retried with capped
        backoff, `attempts` times at most (None: until they pass; then raises `_Isolate`); a failure
        caused by a record raises `_Isolate` at once. None if stopped meanwhile."""
        txn = self.transactions
        if txn is not None:
            group = self._batch_group
            if group is None or group.generation_id < 0:
                # No generation to prove membership with: the coordinator would accept the offsets of
                # a transaction without one (older clients send none), so never commit such a batch.
                self._rewind(records)
                self._rejoin()
                log.warning("batch of %d fetched outside a group generation: left to replay", len(records))
                return BatchOutcome(fenced=True)
        delay = self.policy.retry_backoff_ms / 1000
        failures = 0
        while True:
            try:
                if txn is None:
                    outcome = self._run(records, fetched_at, dead_letter, record_metrics=True)
                    self._commit(records)
                    self._progressed(records)
                    return outcome
                txn.begin()
                outcome = self._run(records, fetched_at, dead_letter, record_metrics=False)
                # offsets under the generation the batch was fetched in: if the group has moved on
                # since (this process paused past its session timeout, a rebalance), the coordinator
                # refuses them and the transaction must abort (KIP-447)
                txn.commit(self._offsets(records), group)
                self.pipeline.record_metrics(outcome)
                self._progressed(records)
                return outcome
            except Exception as e:
                if txn is not None and isinstance(e, GROUP_MOVED_ON):
                    self._abort(txn, "group_moved_on")
                    self._rewind(records)
                    self._rejoin()
                    log.warning(
                        "batch of %d aborted: the group moved on (%s); its partitions' owner replays it",
                        len(records),
                        describe(e),
                    )
                    return BatchOutcome(fenced=True)
                kind = classify(e)
                if txn is not None:
                    fatal = txn.is_fatal(e)
                    self._abort(txn, "producer_fenced" if fatal else "error", recreate=fatal)
                failures += 1
                if kind is FailureKind.RECORD or (attempts is not None and failures >= attempts):
                    raise _Isolate(e) from e
                self.metrics.retries.inc()
                log.warning(
                    "batch of %d failed (%s); retrying in %.1fs", len(records), describe(e, 300), delay
                )
                self._update_lag()
                if self.stop_event.wait(delay):
                    return None
                delay = min(delay * 2, self.policy.max_retry_backoff_ms / 1000)

    def _run(
        self,
        records: list[SourceRecord],
        fetched_at: float,
        dead_letter: tuple[str, str] | None,
        record_metrics: bool,
    ) -> BatchOutcome:
        if dead_letter is not None:
            return self.pipeline.dead_letter(records[0], *dead_letter, record_metrics=record_metrics)
        return self.pipeline.process(records, record_metrics=record_metrics, fetched_at=fetched_at)

    def _progressed(self, records: list[SourceRecord]) -> None:
        """The partitions of committed records moved: their progress timestamps (stall alerts)."""
        now = time.time()
        for topic, partition in {(r.topic, r.partition) for r in records}:
            self.metrics.progress.labels(topic, str(partition)).set(now)

    def _abort(self, txn: TransactionalProducer, reason: str, recreate: bool = False) -> None:
        """Abort (or recreate a producer beyond use); a failure here is left to the next begin()."""
        self.metrics.transactions_aborted.labels(reason).inc()
        try:
            if recreate:
                txn.recreate()
            else:
                txn.abort()
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("aborting the transaction failed (%s)", describe(e))

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
        return first_offsets(batch)

    @staticmethod
    def _offsets(batch: list[SourceRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
        return batch_offsets(batch)

    def _next_batch(self) -> list[SourceRecord]:
        batch, group = collect_batch(self.consumer, self.policy, self.stop_event)
        if group is not None:
            self._batch_group = group
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
            except Exception as e:
                if not is_transient(e):
                    raise
                self.metrics.retries.inc()
                log.warning("offset commit failed (%s); retrying in %.1fs", describe(e), delay)
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
        """Lag per partition; a partition with nothing waiting counts as progressing (not stalled)."""
        now = time.time()
        for tp in self.consumer.assignment():
            progress = self.metrics.progress.labels(tp.topic, str(tp.partition))
            if tp not in self._progress_seen:
                self._progress_seen.add(tp)
                progress.set(now)  # assigned now: a partition that never moves from here is stalled
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            lag = max(0, highwater - self.consumer.position(tp))
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
            if lag == 0:
                progress.set(now)


# -- what every batch-transactional consume loop shares (the encoder's, the feedback service's) --------


def collect_batch(
    consumer: KafkaConsumer,
    policy: BatchPolicy,
    stop_event: threading.Event,
    interrupted: Callable[[], bool] = lambda: False,
) -> tuple[list[SourceRecord], ConsumerGroupMetadata | None]:
    """Poll a micro-batch (`policy`: size and wait caps), and the group membership its first records
    were fetched under: a batch's transaction commits its offsets under it, so a rebalance or an
    eviction since then fences the batch. `interrupted()` ends the batch early (e.g. a rebalance)."""
    batch: list[SourceRecord] = []
    group: ConsumerGroupMetadata | None = None
    deadline: float | None = None
    while len(batch) < policy.max_records and not stop_event.is_set():
        if deadline is None:
            timeout_ms = policy.poll_timeout_ms
        else:
            timeout_ms = int((deadline - time.monotonic()) * 1000)
            if timeout_ms <= 0:
                break
        polled = consumer.poll(timeout_ms=timeout_ms, max_records=policy.max_records - len(batch))
        for records in polled.values():
            batch.extend(
                SourceRecord(
                    r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers or ())
                )
                for r in records
            )
        if batch and deadline is None:
            deadline = time.monotonic() + policy.max_wait_ms / 1000
            group = consumer.group_metadata()
        if not batch or interrupted():
            break  # nothing arrived within poll_timeout: give the stop flag a look
    return batch, group


def first_offsets(batch: list[SourceRecord]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for r in batch:
        tp = TopicPartition(r.topic, r.partition)
        if tp not in first or r.offset < first[tp]:
            first[tp] = r.offset
    return first


def batch_offsets(batch: list[SourceRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit after a batch: one past its last record, per partition."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for r in batch:
        tp = TopicPartition(r.topic, r.partition)
        if tp not in offsets or offsets[tp].offset <= r.offset:
            offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
    return offsets


def resume_interrupted_rebalance(consumer: KafkaConsumer) -> None:
    """A poll() timeout can leave a rebalance unfinished in kafka-python 3.0.12, and the consumer
    without partitions (`kafka_compat.resume_interrupted_join`): finish it at the next poll()."""
    if resume_interrupted_join(consumer):
        log.info("resuming a rebalance that a poll() timeout interrupted")
