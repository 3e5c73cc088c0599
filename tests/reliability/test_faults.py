"""Fault injection against the real stack, short versions that run in CI (`make reliability` runs the
long ones): the broker SIGKILLed past the transaction timeout, a recommender SIGKILLed between
versions, the log cleaner compacting the vectors topic under a fresh replica, partitions added while
running, an encoder paused past its session timeout (fenced as a zombie by Kafka transactions). Afterwards the index must equal
the latest version of every product, as in Kafka's `validate_delivery` (every acknowledged event
consumed) and Qdrant's crash tests (no missing, no phantom, no stale ids)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.oracles import (
    Differences,
    History,
    compare,
    read_vectors,
    replica_state,
    replica_state_or_none,
    wait_for,
)
from support.oracles import caught_up as caught_up_group
from support.reliability_report import record as report

from vitrine.api.client import RecommenderClient
from vitrine.catalog.schema import Product
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.index.port import Tombstone
from vitrine.stack import LocalStack
from vitrine.stream.kafka import group_progress, make_admin, make_consumer
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.records import decode_vector_change

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def caught_up(stack: LocalStack) -> bool:
    try:
        progress = group_progress(stack.kafka, "vitrine-encoder", stack.topics.products)
    except Exception:  # the broker may still be coming back
        return False
    return all(committed >= end for committed, end in progress.values())


def caught(stack: LocalStack) -> bool:
    return caught_up_group(stack.kafka, "vitrine-encoder", stack.topics.products)


def wait_for_replica(target: str, expected: dict[str, int], timeout_s: float = 90) -> Differences:
    """Until the replica serves exactly `expected` (returns no differences), or the last differences."""
    last: list[Differences] = []

    def matches() -> bool:
        state = replica_state_or_none(target)
        if state is None:
            return False
        last[:] = [compare(expected, state, deletes_absent=True)]
        return last[0].none

    try:
        wait_for(matches, timeout_s, "the replica serving the last published versions")
    except AssertionError as e:
        raise AssertionError(f"{e}: {last[0] if last else 'no answer'}") from None
    return last[0]


def model_version(stack: LocalStack) -> str:
    from vitrine.model.card import read_card

    return read_card(stack.model_dir).model_version


def vector_ends(stack: LocalStack) -> dict[int, int]:
    from kafka.structs import TopicPartition

    consumer = make_consumer(stack.kafka)
    try:
        topic = stack.topics.vectors
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def vector_state(stack: LocalStack) -> dict[str, int]:
    """Last committed record per product in the vectors topic (what compaction keeps; aborted
    transactions are invisible to read_committed readers); negative = deleted."""
    consumer = make_consumer(
        stack.kafka, stack.topics.vectors, consumer_timeout_ms=3000, isolation_level="read_committed"
    )
    state: dict[str, int] = {}
    for record in consumer:
        change = decode_vector_change(record.value)
        state[change.product_id] = -change.version if isinstance(change.change, Tombstone) else change.version
    consumer.close()
    return state


def highest_versions(stack: LocalStack) -> dict[str, int]:
    consumer = make_consumer(
        stack.kafka, stack.topics.vectors, consumer_timeout_ms=3000, isolation_level="read_committed"
    )
    highest: dict[str, int] = {}
    for record in consumer:
        change = decode_vector_change(record.value)
        highest[change.product_id] = max(highest.get(change.product_id, 0), change.version)
    consumer.close()
    return highest


def publish(stack: LocalStack, products: list[Product], version: int) -> dict[str, int]:
    with CatalogPublisher.connect(stack.kafka, stack.topics.products) as publisher:
        for p in products:
            publisher.upsert(replace(p, title=f"{p.title} v{version}"), version=version)
        report = publisher.flush()
    assert not report.failed, report.failed[:5]
    return {p.product_id: version for p in products}


@pytest.fixture
def stack(model_dir: Path, tmp_path: Path) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path, model_dir)
    try:
        local.start_broker()
        yield local
    finally:
        local.stop()


def test_broker_sigkill_past_the_transaction_timeout_loses_nothing(stack: LocalStack) -> None:
    """The broker SIGKILLed mid-ingest (no controlled shutdown, no flush) and kept down for longer than
    the encoder's 10 s transaction timeout, so the transaction in flight is aborted by the coordinator
    when it comes back; then more versions. The encoder and the recommender must wait it out (no
    crash), and afterwards the vectors topic and the replica both hold exactly the last published
    version of every product."""
    products = list(generate(SyntheticConfig(n_products=400, seed=31)).products)
    history = History(stack.kafka, stack.topics.products, products, seed=31)
    encoder = stack.start_encoder(max_batch="16")
    recommender = stack.start_recommender()
    for _ in range(3):
        history.publish_round()
    wait_for(lambda: encoder.metric("vitrine_encoder_events_consumed_total") > 100, 60, "ingest under way")
    assert stack.broker is not None
    stack.broker.kill()  # SIGKILL mid-ingest
    down_s = 15.0  # > transaction_timeout_ms (10 s)
    time.sleep(down_s)
    stack.broker.start()
    recovery = wait_for(lambda: caught(stack), 180, "encoder caught up after the broker came back")
    history.publish_round(share=0.5, delete_share=0.1)
    wait_for(lambda: caught(stack), 120, "the round after the outage ingested")
    assert encoder.alive(), f"the encoder died instead of waiting the broker out:\n{encoder.log_tail()}"
    assert recommender.alive(), f"the recommender died:\n{recommender.log_tail()}"
    topic = read_vectors(stack.kafka, stack.topics.vectors)
    some = next(iter(history.expected))
    assert not compare({**history.expected, "never-written": 1}, topic.last).none  # the oracle can fail
    assert not compare(history.expected, {**topic.last, some: topic.last[some] - 1}).none
    in_topic = compare(history.expected, topic.last)
    assert in_topic.none, str(in_topic)
    served = wait_for_replica(recommender.grpc_target, history.expected)
    retries = encoder.metric("vitrine_encoder_retries_total")
    aborted = sum(
        encoder.metric("vitrine_encoder_transactions_aborted_total", {"reason": r})
        for r in ("error", "producer_fenced", "group_moved_on")
    )
    report(
        "broker_sigkill",
        "tests/reliability/test_faults.py::test_broker_sigkill_past_the_transaction_timeout_loses_nothing",
        ".venv/bin/python -m pytest -s tests/reliability/test_faults.py -k broker",
        products=len(products),
        events=history.published,
        faults=f"broker SIGKILL, down {down_s:.0f} s (transaction timeout 10 s)",
        lost=len(in_topic.missing),
        stale=len(in_topic.stale),
        phantom=len(in_topic.phantom),
        replica_differences=str(served),
        recovery_s=round(recovery, 1),
        retries=retries,
        transactions_aborted=aborted,
        control="in-test: the oracle reports an added lost event and a stale last record; the replica and "
        "the topic are each compared with what was published, not with each other",
    )


def test_recommender_kill_9_with_versions_before_and_after_serves_exactly_the_latest(
    stack: LocalStack,
) -> None:
    """Qdrant's crasher for a replica: several versions per product published, the replica SIGKILLed,
    more versions and deletes published while it is down, then restarted (reusing its shard and
    resuming from the offsets it had applied), then more versions. The replica must serve exactly the
    last published version of every live product and none of the deleted, compared with the source
    of truth recomputed from what was published. Control: the same restart with the shard's saved
    offsets moved past what it applied (a checkpoint ahead of the shard) serves stale versions, which
    the oracle must report."""
    products = list(generate(SyntheticConfig(n_products=300, seed=32)).products)
    history = History(stack.kafka, stack.topics.products, products, seed=32)
    stack.start_encoder()
    first = stack.start_recommender(name="replica")
    for _ in range(3):  # versions 1-3 before the crash
        history.publish_round()
    wait_for(lambda: caught(stack), 90, "ingested")
    wait_for_replica(first.grpc_target, history.expected)
    first.kill()
    for _ in range(2):  # versions while it is down, with deletes
        history.publish_round(share=0.5, delete_share=0.1)
    wait_for(lambda: caught(stack), 90, "ingested while the replica was down")
    started = time.monotonic()
    second = stack.start_recommender(name="replica")  # same index path: returns once SERVING
    recovery = time.monotonic() - started
    reused = "reused: resuming" in second.log_tail(200)
    history.publish_round(share=0.5, delete_share=0.1)  # and after the restart
    wait_for(lambda: caught(stack), 90, "ingested after the restart")
    served = wait_for_replica(second.grpc_target, history.expected)
    assert served.none, str(served)
    assert reused, f"the restarted replica rebuilt instead of reusing its shard:\n{second.log_tail()}"

    # the control: a checkpoint ahead of what the shard applied must be caught as stale
    second.kill()
    state_file = stack.work_dir / "replica-index" / f"default-{model_version(stack)}.vitrine.json"
    state = json.loads(state_file.read_text())
    history.publish_round(share=0.5)  # while down; then pretend the shard had applied it
    wait_for(lambda: caught(stack), 90, "ingested for the control")
    ends = vector_ends(stack)
    state["offsets"] = {str(p): end for p, end in ends.items()}
    state_file.write_text(json.dumps(state))
    control = stack.start_recommender(name="replica")
    with RecommenderClient(control.grpc_target, timeout_s=5) as client:
        controlled = compare(history.expected, replica_state(client), deletes_absent=True)
    assert controlled.stale, "the oracle must catch a replica that skipped records"
    report(
        "recommender_kill_9",
        "tests/reliability/test_faults.py::test_recommender_kill_9_with_versions_before_and_after_serves_exactly_the_latest",
        ".venv/bin/python -m pytest -s tests/reliability/test_faults.py -k recommender_kill",
        products=len(products),
        events=history.published,
        faults="recommender SIGKILL; 3 versions before, 2 rounds (10 % deletes) while down, 1 after",
        lost=len(served.missing),
        stale=len(served.stale),
        phantom=len(served.phantom),
        recovery_s=round(recovery, 1),
        shard_reused=reused,
        control=f"checkpoint moved past the shard: {len(controlled.stale)} stale products reported",
    )


def test_an_encoder_paused_past_its_session_timeout_is_replaced_and_recovers(stack: LocalStack) -> None:
    products = list(generate(SyntheticConfig(n_products=1000, seed=33)).products)
    paused = stack.start_encoder(name="paused", max_batch="16")
    other = stack.start_encoder(name="other", max_batch="16")
    expected = publish(stack, products, version=1)
    wait_for(lambda: paused.metric("vitrine_encoder_events_consumed_total") > 0, 60, "both consuming")
    os.kill(paused.process.pid, signal.SIGSTOP)
    try:
        time.sleep(14)  # past session.timeout.ms (10 s): the group evicts it and rebalances
        expected.update(publish(stack, products[:200], version=2))
        wait_for(lambda: caught_up(stack), 120, "the other encoder took over every partition")
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    time.sleep(5)  # the paused one wakes up in a group that moved on: it must rejoin, not crash
    assert paused.alive(), paused.log_tail()
    expected.update(publish(stack, products[200:400], version=3))
    wait_for(lambda: caught_up(stack), 120, "caught up after the resume")
    assert other.alive()
    # nothing lost: every product's newest version reached the vectors topic
    assert highest_versions(stack) == {p: abs(v) for p, v in expected.items()}
    # nothing stale: the last committed record per key (what compaction keeps) is the newest version.
    # A process paused while it sends a batch resumes and completes the send after the new owner
    # wrote newer vectors; its transaction's offsets are then refused (stale generation, KIP-447) and
    # it aborts, so read_committed readers never see those records (docs/RELIABILITY.md).
    last = vector_state(stack)
    zombie = sorted(p for p, v in expected.items() if last.get(p) != v)
    assert not zombie, f"{len(zombie)} products' last vector record is stale after the resume: {zombie[:5]}"
    assert set(last) == set(expected)
    fenced = paused.metric("vitrine_encoder_transactions_aborted_total", {"reason": "group_moved_on"})
    print(f"paused encoder: {fenced:.0f} batch transactions aborted as a fenced zombie")


def test_the_log_cleaner_compacts_the_vectors_topic_and_a_fresh_replica_rebuilds_the_latest(
    stack: LocalStack,
) -> None:
    """What compaction keeps, observed rather than simulated: the vectors topic with small segments and
    eager cleaning, several versions per product (and deletes), the broker's log cleaner actually
    running (the topic shrinks: the check that fails if it never ran), then a replica rebuilt from
    the compacted topic alone must serve exactly the last published versions."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = make_admin(stack.kafka)
    try:
        eager = {
            "segment.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "max.compaction.lag.ms": "1000",
        }
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, stack.topics.vectors, configs=eager)])
    finally:
        admin.close()
    products = list(generate(SyntheticConfig(n_products=300, seed=34)).products)
    history = History(stack.kafka, stack.topics.products, products, seed=34)
    stack.start_encoder()
    for i in range(5):
        history.publish_round(delete_share=0.1 if i == 4 else 0.0)
    wait_for(lambda: caught(stack), 120, "ingested")
    written = read_vectors(stack.kafka, stack.topics.vectors).records

    def cleaned() -> bool:
        history.publish_round(share=0.02)  # appends roll the active segment (never cleaned itself)
        wait_for(lambda: caught(stack), 60, "ingested")
        return read_vectors(stack.kafka, stack.topics.vectors).records < 0.7 * written

    waited = wait_for(cleaned, 180, "the log cleaner compacting the vectors topic")
    compacted = read_vectors(stack.kafka, stack.topics.vectors)
    in_topic = compare(history.expected, compacted.last)
    assert in_topic.none, str(in_topic)
    fresh = stack.start_recommender(name="fresh-replica")  # rebuilt from the compacted topic alone
    served = wait_for_replica(fresh.grpc_target, history.expected)
    report(
        "log_cleaner",
        "tests/reliability/test_faults.py::test_the_log_cleaner_compacts_the_vectors_topic_and_a_fresh_replica_rebuilds_the_latest",
        ".venv/bin/python -m pytest -s tests/reliability/test_faults.py -k log_cleaner",
        products=len(products),
        events=history.published,
        faults="log cleaner on the vectors topic (segment.ms 1000, min.cleanable.dirty.ratio 0.01)",
        vector_records_before=written,
        vector_records_after=compacted.records,
        cleaner_waited_s=round(waited, 1),
        lost=len(served.missing),
        stale=len(served.stale),
        phantom=len(served.phantom),
        control="the topic must shrink below 70 % of what was written: fails if the cleaner never ran",
    )


def test_partitions_added_while_running_are_picked_up_and_nothing_is_stale(stack: LocalStack) -> None:
    """Partitions added to catalog.products and catalog.vectors while an encoder and a replica run:
    the encoder group and the replica's feed must find them (events keyed to new partitions indexed,
    vectors written to new partitions applied) and the replica must serve exactly the last versions."""
    from kafka.admin import NewPartitions

    products = list(generate(SyntheticConfig(n_products=300, seed=35)).products)
    history = History(stack.kafka, stack.topics.products, products, seed=35)
    encoder = stack.start_encoder()
    replica = stack.start_recommender(config={"partition_refresh_s": 2})
    history.publish_round()
    wait_for(lambda: caught(stack), 90, "ingested")
    wait_for_replica(replica.grpc_target, history.expected)
    admin = make_admin(stack.kafka)
    try:
        admin.create_partitions(
            {
                stack.topics.products: NewPartitions(total_count=4),
                stack.topics.vectors: NewPartitions(total_count=4),
            }
        )
    finally:
        admin.close()
    started = time.monotonic()
    for _ in range(2):  # a fresh publisher sees 4 partitions: half of the keys move to the new ones
        history.publish_round(delete_share=0.05)
    progress = lambda: group_progress(stack.kafka, "vitrine-encoder", stack.topics.products)  # noqa: E731
    wait_for(
        lambda: len(progress()) == 4 and caught(stack), 120, "the encoder group reading the new partitions"
    )
    served = wait_for_replica(replica.grpc_target, history.expected, timeout_s=120)
    picked_up = time.monotonic() - started
    topic = read_vectors(stack.kafka, stack.topics.vectors)
    # a key may now have records in an old and a new partition: the newest across partitions counts
    newest = {p: v for p, v in topic.highest.items()}
    assert {p: abs(v) for p, v in history.expected.items()} == newest
    some = next(iter(history.expected))
    latest = {p: abs(v) for p, v in history.expected.items()}
    assert compare(latest, newest).none
    assert not compare(latest, {**newest, some: newest[some] - 1}).none  # the oracle can fail
    assert encoder.alive() and replica.alive()
    report(
        "partitions_added",
        "tests/reliability/test_faults.py::test_partitions_added_while_running_are_picked_up_and_nothing_is_stale",
        ".venv/bin/python -m pytest -s tests/reliability/test_faults.py -k partitions_added",
        products=len(products),
        events=history.published,
        faults="catalog.products and catalog.vectors from 2 to 4 partitions while running",
        lost=len(served.missing),
        stale=len(served.stale),
        phantom=len(served.phantom),
        picked_up_s=round(picked_up, 1),
        control="in-test: the oracle reports a stale version; the replica is compared with what was published",
    )
