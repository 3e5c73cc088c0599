"""Every use of a private kafka-python attribute, behind a named function (kafka-python 3.0.12).

kafka-python has no public API for these; each function says what it relies on, the version it was
checked against and when. `tests/unit/stream/test_kafka_compat.py` checks each assumption on real
kafka-python objects and fails loudly when the installed version is not the one checked: after an
upgrade, re-read the named kafka-python code, adjust the function, then `CHECKED_VERSION`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import IllegalStateError, MessageSizeTooLargeError
from kafka.structs import TopicPartition

CHECKED_VERSION = "3.0.12"
CHECKED_ON = "2026-12-01"
# bytes of a v2 record around its key and value (DefaultRecordBatchBuilder.MAX_RECORD_OVERHEAD) plus
# the record batch header, as send()'s size estimate counts them
_RECORD_OVERHEAD = 21 + 61


def _coordinator(consumer: KafkaConsumer) -> Any:
    return getattr(consumer, "_coordinator", None)


def resume_interrupted_join(consumer: KafkaConsumer) -> bool:
    """Finish a group join that a `poll()` timeout left pending; True if one was pending.

    Works around a kafka-python 3.0.12 bug (checked 2026-12-01): when a rebalance is triggered by a
    metadata change (typically right after start: the first assignment was made before the topic's
    partitions were known), the leader's assignment makes `need_rejoin()` false again while its
    SyncGroup is still in flight. If the poll() that drives the rebalance times out at that moment,
    the next poll() sees no need to rejoin and never completes the pending join: the assignment stays
    empty and nothing is consumed until some other rebalance happens (seen under CPU load: 5 minutes
    without a record). Asking for a rejoin makes the next poll() finish it (or join again).

    Relies on `KafkaConsumer._coordinator` (a `ConsumerCoordinator`), its `_join_task` (not None
    while a join is in flight, `kafka/coordinator/base.py`) and its public `need_rejoin()` and
    `request_rejoin()`."""
    coordinator = _coordinator(consumer)
    if getattr(coordinator, "_join_task", None) is not None and not coordinator.need_rejoin():
        coordinator.request_rejoin()
        return True
    return False


def request_rejoin(consumer: KafkaConsumer) -> bool:
    """Make the next `poll()` rejoin the group before it fetches (as kafka-python does itself when a
    plain offset commit is refused); False if the consumer has no group coordinator.

    Relies on `KafkaConsumer._coordinator.request_rejoin()` (kafka-python 3.0.12, checked
    2026-12-01): the consumer has no public way to rejoin."""
    coordinator = _coordinator(consumer)
    if coordinator is None or not hasattr(coordinator, "request_rejoin"):
        return False
    coordinator.request_rejoin()
    return True


def has_fatal_transaction_error(producer: KafkaProducer | None) -> bool:
    """Whether a transactional producer's transaction state is beyond recovery (fenced, or an invalid
    epoch): it must then be closed and created again, not aborted.

    Relies on `KafkaProducer._transaction_manager.has_fatal_error()` (kafka-python 3.0.12, checked
    2026-12-01; `kafka/producer/transaction_manager.py`); a producer without transactions has no
    manager and is never in that state."""
    manager = getattr(producer, "_transaction_manager", None)
    return bool(manager is not None and manager.has_fatal_error())


def stop_sender_now(producer: KafkaProducer) -> bool:
    """Stop the producer's sender thread without waiting for what it still holds; False if there is
    none. For a fenced producer whose records are void anyway: `close(timeout=0)` raises while
    records are pending, before it stops the thread.

    Relies on `KafkaProducer._sender.force_close()` (kafka-python 3.0.12, checked 2026-12-01;
    `kafka/producer/sender.py`)."""
    sender = getattr(producer, "_sender", None)
    if sender is None:
        return False
    sender.force_close()
    return True


def append_records(
    producer: KafkaProducer, topic: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
) -> list[Any]:
    """Append (key, value) records of one partition to the producer's buffer as `send(topic,
    value, key, partition=partition)` would, each with its own future, for a whole batch at once.

    `send()` spends most of its time on per-record work that a batch of pre-serialised records of
    one known partition does not need (issue 18: ~1/3 of the encoder's produce cost): header and
    type checks, serialisers, a metadata lookup, the partitioner, a size estimate, a debug line
    formatted eagerly, the transaction check. Here the partition joins the transaction once, every
    record goes straight to the accumulator (the same batches, futures, retries and splitting as
    send()'s), and the sender thread is woken once. The caller must have the topic's metadata
    (`producer.partitions_for(topic)`) and serialised bytes; a record at or above max_request_size
    raises MessageSizeTooLargeError as send() does. Anything that is not a kafka-python
    KafkaProducer (a wrapper, a test double) gets plain send() calls.

    Relies on `KafkaProducer._accumulator.append(tp, timestamp_ms, key, value, headers, now=)` (its
    return value `(future, batch_is_full, new_batch_created, abort_for_new_batch)`),
    `._transaction_manager.maybe_add_partition_to_transaction(tp)`, `._sender.wakeup()`,
    `._closed` and `.config['max_request_size']` (kafka-python 3.0.12, checked 2026-12-01;
    `kafka/producer/kafka.py` send(), `kafka/producer/record_accumulator.py`)."""
    if not isinstance(producer, KafkaProducer):
        return [producer.send(topic, key=key, value=value, partition=partition) for key, value in records]
    if producer._closed:
        raise IllegalStateError("KafkaProducer already closed!")
    tp = TopicPartition(topic, partition)
    limit = producer.config["max_request_size"] - _RECORD_OVERHEAD
    for key, value in records:
        size = (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
        if size > limit:
            raise MessageSizeTooLargeError(
                f"a record of {size} bytes is larger than max_request_size ({limit + _RECORD_OVERHEAD})"
            )
    manager = producer._transaction_manager
    if manager is not None and manager.is_transactional():
        manager.maybe_add_partition_to_transaction(tp)
    append = producer._accumulator.append
    now = time.monotonic()
    timestamp_ms = int(time.time() * 1000)
    futures = []
    wake = False
    for key, value in records:
        future, batch_is_full, new_batch, _ = append(tp, timestamp_ms, key, value, [], now=now)
        futures.append(future)
        wake = wake or batch_is_full or new_batch
    if wake:
        producer._sender.wakeup()
    return futures
