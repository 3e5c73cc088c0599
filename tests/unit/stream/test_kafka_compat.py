"""What `vitrine.stream.kafka_compat` relies on in kafka-python's internals, checked on real objects.

These fail loudly when an upgrade moves or renames a private attribute the workarounds use (they
would otherwise turn into silent no-ops: the `getattr` defaults). The first test fails on any other
version than the one checked, so that an upgrade re-reads the code each function names.
"""

from __future__ import annotations

from collections.abc import Iterator

import kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer

from vitrine.stream import kafka_compat

# no broker: with api_version given, kafka-python opens no connection until it is used
UNREACHABLE = "127.0.0.1:9"
API_VERSION = (3, 9)


@pytest.fixture
def consumer() -> Iterator[KafkaConsumer]:
    c = KafkaConsumer(
        bootstrap_servers=UNREACHABLE, group_id="compat", api_version=API_VERSION, enable_auto_commit=False
    )
    c.subscribe(["compat-topic"])  # local: no join happens before a poll()
    yield c
    c.close(autocommit=False)


@pytest.fixture
def producer() -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=UNREACHABLE, transactional_id="compat", api_version=API_VERSION)
    yield p
    p.close(timeout=0)


def _as_after_a_join(consumer: KafkaConsumer) -> None:
    """The coordinator's state once the leader's assignment came back: nothing asks for a rejoin."""
    coordinator = consumer._coordinator
    coordinator._joined_subscription = set(consumer.subscription())
    coordinator.rejoin_needed = False
    assert coordinator.need_rejoin() is False


def test_the_installed_kafka_python_is_the_one_the_shim_was_checked_against() -> None:
    assert kafka.__version__ == kafka_compat.CHECKED_VERSION, (
        f"kafka-python {kafka.__version__} is installed; vitrine.stream.kafka_compat was checked against "
        f"{kafka_compat.CHECKED_VERSION} on {kafka_compat.CHECKED_ON}: re-check what each of its functions "
        "relies on in the new version, then update CHECKED_VERSION and CHECKED_ON"
    )


def test_the_consumer_exposes_the_join_state_the_rebalance_workaround_reads(consumer: KafkaConsumer) -> None:
    coordinator = consumer._coordinator
    assert hasattr(coordinator, "_join_task"), "ConsumerCoordinator._join_task is gone"
    assert coordinator._join_task is None  # no join in flight before the first poll()
    assert callable(coordinator.need_rejoin) and callable(coordinator.request_rejoin)


def test_resume_interrupted_join_requests_a_rejoin_only_for_a_join_left_pending(
    consumer: KafkaConsumer,
) -> None:
    coordinator = consumer._coordinator
    _as_after_a_join(consumer)
    assert kafka_compat.resume_interrupted_join(consumer) is False  # no join task: nothing to do
    assert coordinator.need_rejoin() is False
    coordinator._join_task = object()  # its SyncGroup in flight: the next poll() would never finish it
    assert kafka_compat.resume_interrupted_join(consumer) is True
    assert coordinator.need_rejoin() is True, "request_rejoin() no longer makes need_rejoin() true"
    coordinator._join_task = None


def test_request_rejoin_makes_the_next_poll_rejoin(consumer: KafkaConsumer) -> None:
    coordinator = consumer._coordinator
    _as_after_a_join(consumer)
    assert kafka_compat.request_rejoin(consumer) is True
    assert coordinator.need_rejoin() is True


def test_a_transactional_producer_exposes_its_fatal_state(producer: KafkaProducer) -> None:
    manager = producer._transaction_manager
    assert manager is not None and callable(manager.has_fatal_error)
    assert kafka_compat.has_fatal_transaction_error(producer) is False
    manager.transition_to_fatal_error(kafka.errors.ProducerFencedError())
    assert kafka_compat.has_fatal_transaction_error(producer) is True


def test_a_producer_without_transactions_is_never_fatal() -> None:
    p = KafkaProducer(bootstrap_servers=UNREACHABLE, api_version=API_VERSION)
    try:
        assert kafka_compat.has_fatal_transaction_error(p) is False
    finally:
        p.close(timeout=0)


def test_the_sender_thread_can_be_stopped_at_once(producer: KafkaProducer) -> None:
    sender = producer._sender
    assert callable(sender.force_close), "Sender.force_close is gone"
    assert kafka_compat.stop_sender_now(producer) is True
    sender.join(5)
    assert not sender.is_alive()


def test_the_producer_exposes_what_append_records_uses(producer: KafkaProducer) -> None:
    import inspect

    parameters = list(inspect.signature(producer._accumulator.append).parameters)
    assert parameters[:5] == ["tp", "timestamp_ms", "key", "value", "headers"] and "now" in parameters
    assert callable(producer._transaction_manager.maybe_add_partition_to_transaction)
    assert callable(producer._sender.wakeup)
    assert producer._closed is False and isinstance(producer.config["max_request_size"], int)


def test_append_records_refuses_a_record_larger_than_a_request(producer: KafkaProducer) -> None:
    too_large = b"x" * producer.config["max_request_size"]
    with pytest.raises(kafka.errors.MessageSizeTooLargeError):
        kafka_compat.append_records(producer, "compat-topic", 0, [(b"k", too_large)])


def test_append_records_on_a_closed_producer_fails_like_send() -> None:
    p = KafkaProducer(bootstrap_servers=UNREACHABLE, api_version=API_VERSION)
    p.close(timeout=0)
    with pytest.raises(kafka.errors.IllegalStateError):
        kafka_compat.append_records(p, "compat-topic", 0, [(b"k", b"v")])
