"""Kafka transactions for the encoder: each micro-batch's vector records, dead letters and consumed
offsets are committed atomically, and a zombie is fenced.

The zombie: an encoder paused (SIGSTOP, a long GC, a starved VM) past its session timeout while it
sends a batch. The group gives its partitions to another encoder, which writes newer vectors; when
the zombie resumes, its send completes. Without transactions its stale records would then be the
last ones for their keys in the compacted vectors topic. With them, the batch is written inside a
transaction whose consumed offsets are sent with the consumer's group metadata (generation and member
id, KIP-447): the group coordinator refuses the offsets of a stale generation, the zombie aborts, and
its records are never visible to `read_committed` readers; the log cleaner drops them.

`TransactionalProducer` stands in for a KafkaProducer where the sink and the dead letters expect one
(`send`, `flush`), while the worker drives the transaction around each batch. Participants (the vector
sink's version map, the dead letters' pending acknowledgements) hear whether the transaction
committed or aborted, so nothing of an aborted batch is remembered as written.

Error classes, as kafka-python 3 raises them:

- the group moved on (`GROUP_MOVED_ON`): `CommitFailedError`, raised by `send_offsets_to_transaction`
  for a TxnOffsetCommit rejected with ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID (the producer is left
  in its abortable-error state). Abort; the partitions' new owner replays the batch.
- fatal (`FATAL`, or the producer's transaction state says so): `ProducerFencedError` (another producer
  with the same transactional.id, or the coordinator aborted this one's transaction on timeout and
  bumped its epoch), `InvalidProducerEpochError`, `InvalidTxnStateError`, authorization failures. The
  producer is unusable: close it, create a new one, `init_transactions()` again, retry the batch.
- anything else from Kafka is abortable: abort and retry the batch with backoff.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from kafka import KafkaProducer
from kafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    FencedInstanceIdError,
    IllegalGenerationError,
    InvalidProducerEpochError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from vitrine.stream.kafka import KafkaSettings, make_producer
from vitrine.stream.kafka_compat import append_records, has_fatal_transaction_error, stop_sender_now

log = logging.getLogger(__name__)

# The consumer's generation is stale: this process was evicted from the group (or it rebalanced).
GROUP_MOVED_ON: tuple[type[BaseException], ...] = (
    CommitFailedError,
    IllegalGenerationError,
    UnknownMemberIdError,
    FencedInstanceIdError,
)
# The producer cannot be used any more: recreate it.
FATAL: tuple[type[BaseException], ...] = (
    ProducerFencedError,
    InvalidProducerEpochError,
    InvalidTxnStateError,
    TransactionalIdAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


class TransactionParticipant(Protocol):
    """Something that keeps state about what it wrote in the current transaction."""

    def transaction_committed(self) -> None: ...

    def transaction_aborted(self) -> None: ...


class TransactionalProducer:
    """A transactional KafkaProducer that can be recreated after a fatal error.

    `send` and `flush` go to the current producer, so the vector sink and the dead letters can hold
    this object instead of a KafkaProducer and survive a recreation. `start()` (also done lazily by
    `begin()`) calls `init_transactions()`, which aborts whatever transaction a previous incarnation
    with the same transactional.id left open and fences that incarnation.
    """

    def __init__(self, factory: Callable[[], KafkaProducer], transactional_id: str) -> None:
        self._factory = factory
        self.transactional_id = transactional_id
        self._producer: KafkaProducer | None = None
        self._initialized = False
        self.in_transaction = False
        self._participants: list[TransactionParticipant] = []

    # -- what the sink and the dead letters use ------------------------------------------------

    def register(self, participant: TransactionParticipant) -> None:
        self._participants.append(participant)

    def send(self, topic: str, **kwargs: Any) -> Any:
        return self._current().send(topic, **kwargs)

    def flush(self, timeout: float | None = None) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)

    def partitions_for(self, topic: str) -> set[int]:
        return self._current().partitions_for(topic)

    def append_records(
        self, topic: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> list[Any]:
        """`send()` of many records of one partition at once (`kafka_compat.append_records`)."""
        return append_records(self._current(), topic, partition, records)

    # -- what the worker uses ------------------------------------------------------------------

    def start(self) -> None:
        """Create the producer and register the transactional.id (fencing any earlier incarnation)."""
        producer = self._current()
        if not self._initialized:
            producer.init_transactions()
            self._initialized = True
            log.info("transactional producer %s ready", self.transactional_id)

    def begin(self) -> None:
        self.start()
        self._current().begin_transaction()
        self.in_transaction = True

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata], group_metadata: Any) -> None:
        """Add the consumed offsets to the transaction (fenced by the group generation, KIP-447) and
        commit it. Raises on failure; the transaction is then still open: call `abort()`."""
        producer = self._current()
        producer.send_offsets_to_transaction(dict(offsets), group_metadata)
        producer.commit_transaction()
        self.in_transaction = False
        for participant in self._participants:
            participant.transaction_committed()

    def abort(self) -> None:
        """Abort the open transaction, if any; a producer that cannot abort (fatal state) is recreated
        instead, which aborts the transaction on the broker just as well (init_transactions)."""
        for participant in self._participants:
            participant.transaction_aborted()
        if not self.in_transaction:
            return
        self.in_transaction = False
        if self.is_fatal():
            self.recreate()
            return
        try:
            self._current().abort_transaction()
        except Exception as e:  # fatal meanwhile, or an invalid state: start over with a new producer
            log.warning("abort failed (%s: %s); recreating the producer", type(e).__name__, e)
            self.recreate()

    def is_fatal(self, error: BaseException | None = None) -> bool:
        """Whether the producer is beyond use: `error` is fatal, or its transaction state is."""
        if error is not None and isinstance(error, FATAL):
            return True
        return has_fatal_transaction_error(self._producer)

    def recreate(self) -> None:
        """Drop the producer (without waiting for what it holds) and start a new one with the same
        transactional.id. Raises if the broker is unreachable; the next `begin()` tries again."""
        old, self._producer = self._producer, None
        self._initialized = False
        self.in_transaction = False
        for participant in self._participants:
            participant.transaction_aborted()
        if old is not None:
            _close_now(old)
        log.warning("recreating transactional producer %s", self.transactional_id)
        self.start()

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is None:
            return
        if self.in_transaction:
            with contextlib.suppress(Exception):
                self.abort()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception:
                _close_now(producer)

    def _current(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._factory()
        return self._producer


def _close_now(producer: KafkaProducer) -> None:
    """Close without waiting for buffered records (a fenced producer's records are void anyway).
    close(timeout=0) raises if records are still pending, before it stops the sender thread, so
    the thread is then stopped directly."""
    try:
        producer.close(timeout=0)
    except Exception:
        with contextlib.suppress(Exception):
            stop_sender_now(producer)


def make_transactional_producer(
    settings: KafkaSettings,
    transactional_id: str,
    transaction_timeout_ms: int = 10_000,
    **overrides: Any,
) -> TransactionalProducer:
    def factory() -> KafkaProducer:
        return make_producer(
            settings,
            transactional_id=transactional_id,
            transaction_timeout_ms=transaction_timeout_ms,
            **overrides,
        )

    return TransactionalProducer(factory, transactional_id)


# -- transactional ids ---------------------------------------------------------------------------

_held_slots: list[IO[str]] = []  # open lock files: a slot is held for the life of the process


def host_instance_slot(group_id: str, lock_dir: Path | None = None, max_slots: int = 256) -> str:
    """The lowest instance number free on this host for `group_id`, held until the process exits.

    One encoder per host or container gets "0". Two encoders of one group on one host get "0" and
    "1". A process restarted after a crash (even SIGKILL: the OS releases the lock) gets its
    predecessor's number back while the others keep theirs, so its transactional.id is the same and
    `init_transactions()` aborts the transaction the predecessor left open at once. A paused process
    keeps its number, so its replacement gets another one. Falls back to the process id if the lock
    directory cannot be used.
    """
    directory = lock_dir or Path(tempfile.gettempdir()) / "vitrine-encoder-slots"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", group_id)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for slot in range(max_slots):
            handle = (directory / f"{name}.{slot}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_slots.append(handle)
            return str(slot)
    except OSError as e:
        log.warning("cannot hold an instance slot in %s (%s); using the process id", directory, e)
        return f"pid{os.getpid()}"
    log.warning("all %d instance slots of %s are held; using the process id", max_slots, group_id)
    return f"pid{os.getpid()}"


def default_transactional_id(group_id: str, instance_id: str) -> str:
    """`<group id>-<host name>-<instance id>`: unique per live encoder, stable across its restarts."""
    return f"{group_id}-{socket.gethostname()}-{instance_id}"
