"""The encoder under failure, as deployed: separate processes, a real broker, kill -9, SIGTERM,
rebalances and a backfill. After each scenario the vectors topic (the embedded index's source of
truth) must hold exactly the latest version of every product: none missing, none stale, and the last
record per key (what survives compaction) must be that latest version."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from support.oracles import History, compare, read_vectors, wait_for
from support.reliability_report import record as report

from vitrine.api.client import RecommenderClient
from vitrine.catalog.schema import Product
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.index.port import Tombstone
from vitrine.stack import LocalStack
from vitrine.stream.kafka import group_progress, make_consumer
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.records import decode_vector_change

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def caught_up(stack: LocalStack, group_id: str) -> bool:
    progress = group_progress(stack.kafka, group_id, stack.topics.products)
    return all(committed >= end for committed, end in progress.values())


def vectors_state(stack: LocalStack, topic: str) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(max version per product, last version per product, records per product) in a vectors topic."""
    consumer = make_consumer(stack.kafka, topic, consumer_timeout_ms=3000, isolation_level="read_committed")
    highest: dict[str, int] = {}
    last: dict[str, int] = {}
    written: dict[str, int] = {}
    for record in consumer:
        change = decode_vector_change(record.value)
        pid = change.product_id
        sign = -1 if isinstance(change.change, Tombstone) else 1  # negative: deleted at that version
        highest[pid] = max(highest.get(pid, 0), change.version)
        last[pid] = sign * change.version
        written[pid] = written.get(pid, 0) + 1
    consumer.close()
    return highest, last, written


def written_pairs(stack: LocalStack, topic: str) -> list[tuple[str, int]]:
    consumer = make_consumer(stack.kafka, topic, consumer_timeout_ms=3000, isolation_level="read_committed")
    pairs = [(c.product_id, c.version) for c in (decode_vector_change(r.value) for r in consumer)]
    consumer.close()
    return pairs


def assert_latest_everywhere(expected: dict[str, int], highest: dict[str, int], last: dict[str, int]) -> None:
    missing = sorted(set(expected) - set(last))
    stale = sorted(p for p, v in expected.items() if p in last and last[p] != v)
    phantom = sorted(set(last) - set(expected))
    assert not missing and not stale and not phantom, (
        f"missing {missing[:10]} ({len(missing)}), stale {stale[:10]} ({len(stale)}), phantom {phantom[:10]}"
    )
    assert {p: abs(v) for p, v in last.items()} == highest, (
        "the last record per key is not the newest version"
    )


@pytest.fixture
def stack(model_dir: Path, tmp_path: Path) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path, model_dir)
    try:
        local.start_broker()
        yield local
    finally:
        local.stop()


def publish_history(stack: LocalStack, products: list[Product], rounds: int, seed: int) -> dict[str, int]:
    """Several versions per product, interleaved, some deletes; returns the expected final state
    (version, negative when the last event is a delete)."""
    rng = random.Random(seed)
    expected: dict[str, int] = {}
    with CatalogPublisher.connect(stack.kafka, stack.topics.products) as publisher:
        for r in range(1, rounds + 1):
            for product in rng.sample(products, len(products)):
                if r == rounds and rng.random() < 0.05:
                    publisher.delete(product.product_id, version=r)
                    expected[product.product_id] = -r
                else:
                    publisher.upsert(replace(product, title=f"{product.title} r{r}"), version=r)
                    expected[product.product_id] = r
        assert not publisher.flush().failed
    return expected


def test_kill_9_while_events_are_still_produced_loses_nothing_and_leaves_nothing_stale(
    stack: LocalStack,
) -> None:
    """Kafka's hard bounce with `validate_delivery`: the encoder is SIGKILLed over and over while a
    producer keeps publishing new versions and deletes (so the kills land in every phase: fetching,
    encoding, mid-transaction), then restarted; afterwards the vectors topic must hold exactly the
    last published event of every product, its last record per key (what compaction keeps) must be
    that version, and no (product, version) may be written twice. The oracle is checked to fail on
    the defects it names (a lost event, a stale last record) before it is trusted."""
    products = list(generate(SyntheticConfig(n_products=600, seed=21)).products)
    history = History(stack.kafka, stack.topics.products, products, seed=1)
    history.publish_round()
    rng = random.Random(7)
    kills = int(os.environ.get("VITRINE_RELIABILITY_KILLS", "4"))  # `make reliability` runs 20
    stop = threading.Event()
    publisher = history.keep_publishing(stop, pause_s=0.1, share=0.2)
    started = time.monotonic()
    try:
        for kill in range(kills):
            encoder = stack.start_encoder(name=f"encoder-{kill}", max_batch="64")
            before = history.published
            # somewhere in the stream: a random amount of progress, while events keep arriving
            target = rng.randint(50, 400)

            def progressed(e: object = encoder, t: int = target) -> bool:
                return e.metric("vitrine_encoder_events_consumed_total") >= t  # type: ignore[attr-defined]

            wait_for(progressed, 120, "progress before the kill")
            encoder.kill()  # SIGKILL: no flush, no commit, no goodbye
            assert history.published > before, "events must still be arriving when the encoder dies"
    finally:
        stop.set()
        publisher.join(60)
    stack.start_encoder(name="encoder-final")
    recovery = wait_for(lambda: caught_up(stack, "vitrine-encoder"), 180, "caught up after the last restart")
    topic = read_vectors(stack.kafka, stack.topics.vectors)
    # the oracle can fail: it catches a lost event and a stale last record
    some = next(iter(history.expected))
    assert not compare({**history.expected, "never-written": 1}, topic.last).none
    assert not compare(history.expected, {**topic.last, some: topic.last[some] - 1}).none
    differences = compare(history.expected, topic.last)
    assert differences.none, str(differences)
    assert {p: abs(v) for p, v in topic.last.items()} == topic.highest, "a last record is not the newest"
    uncommitted = read_vectors(stack.kafka, stack.topics.vectors, "read_uncommitted")
    report(
        "encoder_kill_9_while_producing",
        "tests/integration/test_encoder_failures.py::test_kill_9_while_events_are_still_produced_loses_nothing_and_leaves_nothing_stale",
        f"VITRINE_RELIABILITY_KILLS={kills} .venv/bin/python -m pytest -s tests/integration/test_encoder_failures.py -k kill_9",
        products=len(products),
        events=history.published,
        faults=f"{kills} x SIGKILL while producing",
        lost=len(differences.missing),
        stale=len(differences.stale),
        phantom=len(differences.phantom),
        duplicates=topic.duplicates,
        vector_records=topic.records,
        aborted_records_seen_uncommitted=uncommitted.records - topic.records,
        duplicates_read_uncommitted=uncommitted.duplicates,
        recovery_s=round(recovery, 1),
        run_s=round(time.monotonic() - started, 1),
        control="in-test: the oracle reports an added lost event and a stale last record",
    )
    assert topic.duplicates == 0, f"{topic.duplicates} (product, version) pairs written twice"


def test_two_encoders_share_the_partitions_through_rebalances(stack: LocalStack) -> None:
    products = list(generate(SyntheticConfig(n_products=800, seed=22)).products)
    first = stack.start_encoder(name="encoder-a")
    expected: dict[str, int] = {}
    stop = threading.Event()
    rounds = [0]

    def stream() -> None:
        # rounds of updates until told to stop, so the group changes while events keep coming
        with CatalogPublisher.connect(stack.kafka, stack.topics.products) as publisher:
            while not stop.is_set():
                rounds[0] += 1
                for p in products:
                    publisher.upsert(replace(p, title=f"{p.title} s{rounds[0]}"), version=rounds[0])
                    expected[p.product_id] = rounds[0]
                publisher.flush()
                time.sleep(0.3)

    producer = threading.Thread(target=stream)
    producer.start()
    wait_for(lambda: first.metric("vitrine_encoder_events_consumed_total") > 0, 60, "first encoder consuming")
    second = stack.start_encoder(name="encoder-b")  # joins mid-stream: a rebalance
    wait_for(
        lambda: second.metric("vitrine_encoder_events_consumed_total") > 0, 60, "second encoder consuming"
    )
    assert first.terminate() == 0  # leaves gracefully mid-stream: another rebalance
    at_handover = rounds[0]
    wait_for(lambda: rounds[0] >= at_handover + 2, 60, "two more rounds after the handover")
    stop.set()
    producer.join(60)
    wait_for(lambda: caught_up(stack, "vitrine-encoder"), 120, "group caught up")
    highest, last, _ = vectors_state(stack, stack.topics.vectors)
    assert_latest_everywhere(expected, highest, last)


def test_sigterm_finishes_the_batch_commits_and_leaves_the_group(stack: LocalStack) -> None:
    products = list(generate(SyntheticConfig(n_products=2000, seed=23)).products)
    encoder = stack.start_encoder(max_batch="32")
    publish_history(stack, products, rounds=1, seed=3)
    wait_for(lambda: encoder.metric("vitrine_encoder_events_consumed_total") > 200, 60, "some progress")
    assert encoder.terminate() == 0
    assert "encoder stopped" in encoder.log_tail(5)
    # everything committed was written, and nothing was written beyond what was committed but one batch
    progress = group_progress(stack.kafka, "vitrine-encoder", stack.topics.products)
    committed = sum(c for c, _ in progress.values())
    _, last, _ = vectors_state(stack, stack.topics.vectors)
    assert committed > 0
    assert len(last) == committed, f"{len(last)} vectors written, {committed} events committed"
    # the group is empty at once: a successor does not wait for a session timeout
    successor = stack.start_encoder(name="successor")
    started = time.monotonic()
    wait_for(lambda: successor.metric("vitrine_encoder_events_consumed_total") > 0, 30, "successor consuming")
    assert time.monotonic() - started < 8


def test_backfill_builds_a_complete_second_index_while_the_first_serves(stack: LocalStack) -> None:
    products = list(generate(SyntheticConfig(n_products=800, seed=24)).products)
    stack.start_encoder()
    recommender = stack.start_recommender()
    expected = publish_history(stack, products, rounds=2, seed=4)
    wait_for(lambda: caught_up(stack, "vitrine-encoder"), 60, "live encoder caught up")
    live = [p for p, v in expected.items() if v > 0]

    errors: list[str] = []
    served = [0]
    stop = threading.Event()

    def keep_querying() -> None:
        with RecommenderClient(recommender.grpc_target, timeout_s=2) as client:
            while not stop.is_set():
                try:
                    client.similar(random.choice(live[:100]), limit=10)
                    served[0] += 1
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        errors.append(e.code().name)

    queries = threading.Thread(target=keep_querying)
    queries.start()
    backfill = stack.start_encoder(
        name="backfill", group_id=None, flags=("--backfill", "--exit-when-caught-up"), wait=False
    )
    assert backfill.process.wait(180) == 0, backfill.log_tail()
    stop.set()
    queries.join(10)
    assert not errors and served[0] > 0

    log = backfill.log_path.read_text()
    assert "backfill" in log and "stopping as asked" in log
    model_version = next(
        line.split("catalog.vectors.")[1].split()[0]
        for line in log.splitlines()
        if "catalog.vectors." in line
    )
    new_topic = f"catalog.vectors.{model_version}"
    highest, last, _ = vectors_state(stack, new_topic)
    assert_latest_everywhere(expected, highest, last)
    # switching is configuration: a replica pointed at the new topic serves the same catalogue
    second = stack.start_recommender(name="recommender-new", vectors_topic=new_topic)
    with RecommenderClient(second.grpc_target, timeout_s=2) as client:
        assert all(client.similar(pid, limit=3).ids for pid in live[:50])
