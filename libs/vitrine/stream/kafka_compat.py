"""Every use of a private kafka-python attribute, behind a named function (kafka-python 3.0.12).

kafka-python has no public API for these; each function says what it relies on, the version it was
checked against and when. `tests/unit/stream/test_kafka_compat.py` checks each assumption on real
kafka-python objects and fails loudly when the installed version is not the one checked: after an
upgrade, re-read the named kafka-python code, adjust the function, then `CHECKED_VERSION`.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer

CHECKED_VERSION = "3.0.12"
CHECKED_ON = "2026-12-01"


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
