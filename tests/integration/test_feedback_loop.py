"""The feedback loop against a real broker: simulated users on two variants, two feedback service
processes sharing the partitions, one killed with SIGKILL mid-stream (its partitions move to the other,
which restores their state from the changelog) and a third joining later (they move again), and the
report read back from Kafka.

Oracles: (1) the arms' totals equal an independent offline recount of the interactions topic (the
same attribution rules, written plainly here), so a batch lost or counted twice across the kill and
the rebalances fails the test (with the state restore disabled, it fails: 866 of 1,206 impressions);
the kill lands mid-stream (three more rounds are published after it);
(2) poison records are dead-lettered exactly once each, with their reason, and the stream goes on;
(3) the report names the trained model the winner over a popularity ranker.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from kafka.structs import TopicPartition

from vitrine.api.servicer import new_recommendation_id
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.errors import InvalidEventError
from vitrine.feedback.interactions import Interaction, InteractionType, decode_interaction
from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.feedback.publisher import InteractionPublisher
from vitrine.feedback.recorder import ImpressionRecorder
from vitrine.feedback.results import experiment_report, read_results
from vitrine.feedback.topics import ensure_feedback_topics
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import ImpressionMetrics
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.results import Task
from vitrine.simulation.users import UserSimulator
from vitrine.stack import LocalStack
from vitrine.stream.dead_letters import H_REASON
from vitrine.stream.kafka import KafkaSettings, group_progress, make_consumer, make_producer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 400
ROUNDS = 6
LIMIT = 8


def read_topic(settings: KafkaSettings, topic: str) -> dict[int, list]:
    consumer = make_consumer(settings, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: dict[int, list] = {tp.partition: [] for tp in partitions}
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline
            for tp, records in consumer.poll(timeout_ms=500).items():
                out[tp.partition].extend(records)
        return out
    finally:
        consumer.close()


def recount(settings: KafkaSettings, topic: str) -> dict[tuple[str, str, str], list[float]]:
    """Per arm: [units, impressions, clicks, add_to_carts, conversions, revenue], from the raw topic."""
    units: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    for records in read_topic(settings, topic).values():
        lists: dict[str, dict] = {}
        for r in records:
            try:
                e = decode_interaction(r.value, r.key)
            except InvalidEventError:
                continue
            if e.type is InteractionType.IMPRESSION:
                if e.recommendation_id in lists or not e.unit_key or e.shown is None:
                    continue
                arm = (e.shown.experiment, e.shown.variant, e.placement)
                lists[e.recommendation_id] = {
                    "key": (*arm, e.unit_key),
                    "products": set(e.shown.product_ids),
                    "clicked": set(),
                    "events": set(),
                }
                units[(*arm, e.unit_key)][0] += 1
                continue
            shown = lists.get(e.recommendation_id)
            if shown is None or e.event_id in shown["events"] or e.product_id not in shown["products"]:
                continue
            shown["events"].add(e.event_id)
            totals = units[shown["key"]]
            if e.type is InteractionType.CLICK:
                if e.product_id not in shown["clicked"]:
                    shown["clicked"].add(e.product_id)
                    totals[1] += 1
            elif e.type is InteractionType.ADD_TO_CART:
                totals[2] += 1
            else:
                totals[3] += 1
                totals[4] += e.value
    arms: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0])
    for (exp, variant, placement, _), t in units.items():
        a = arms[(exp, variant, placement)]
        a[0] += 1
        for i in range(5):
            a[i + 1] += t[i]
    return dict(arms)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(0.2)


def test_the_loop_names_the_trained_model_and_a_killed_feedback_service_loses_and_double_counts_nothing(
    kafka_broker: object,
    kafka_settings: KafkaSettings,
    unique_name: Callable[[str], str],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    base = unique_name("fb")
    topics = FeedbackTopics(
        f"{base}.interactions", f"{base}.interactions.dlq", f"{base}-state", f"{base}.exp"
    )
    ensure_feedback_topics(kafka_settings, topics, partitions=3)
    group = f"{base}-feedback"
    options = {
        "interactions_topic": topics.interactions,
        "dead_letter_topic": topics.dead_letters,
        "changelog_topic": topics.changelog,
        "results_topic": topics.results,
        "group_id": group,
        "results_interval_s": "0.5",
        "max_batch": "150",
    }

    # the catalogue the model was trained on, two rankers and shoppers who know what they like
    catalog = generate(SyntheticConfig(n_products=600))
    products = [p for p in catalog.products if p.availability.purchasable]
    model = load_inference_model(model_dir)
    vectors = model.encode_items(products)
    popularity = Counter(
        i for group_ids in (*catalog.sessions, *catalog.baskets) for i in group_ids.product_ids
    )
    by_popularity = sorted(products, key=lambda p: (-popularity[p.product_id], p.product_id))
    index = {p.product_id: i for i, p in enumerate(products)}

    def trained(anchor_id: str) -> list[str]:
        scores = vectors @ vectors[index[anchor_id]]
        scores[index[anchor_id]] = -np.inf
        return [products[i].product_id for i in np.argsort(-scores)[:LIMIT]]

    def popular(anchor_id: str) -> list[str]:
        return [p.product_id for p in by_popularity if p.product_id != anchor_id][:LIMIT]

    rankers = {"popularity": popular, "trained": trained}
    router = ExperimentRouter(
        [Variant("popularity", similar="p"), Variant("trained", similar="t")], salt=base
    )
    simulator = UserSimulator(products, catalog.complementary_map, seed=5)
    users = simulator.users(USERS)

    recorder = ImpressionRecorder(kafka_settings, topics.interactions, ImpressionMetrics())
    recorder.start()
    events = InteractionPublisher(make_producer(kafka_settings), topics.interactions)
    raw = make_producer(kafka_settings)
    poison = 0

    stack = LocalStack(tmp_path, model_dir)
    stack.attach_broker(kafka_broker)  # type: ignore[arg-type]
    # two instances share the three partitions (the service scales by partitions)
    feedback = stack.start_feedback("feedback-1", **options)
    other = stack.start_feedback("feedback-2", **options)
    committed_at_kill = -1
    try:
        t0 = datetime.now(UTC)
        for round_no in range(ROUNDS):
            responses = []
            for step_user, user in enumerate(users):
                anchor = simulator.anchor(user, round_no)
                variant = router.assign(user.unit_key).name
                shown = rankers[variant](anchor.product_id)
                rec_id = new_recommendation_id()
                recorder.record(
                    rec_id,
                    user.unit_key,
                    "pdp-similar",
                    base,
                    variant,
                    "popularity",
                    variant,
                    Task.SIMILAR,
                    shown,
                )
                when = t0 + timedelta(seconds=round_no * 60 + step_user * 0.01)
                responses.append((user, rec_id, when, simulator.respond(user, anchor, shown, round_no)))
            recorder.flush()
            for user, rec_id, when, answers in responses:
                for n, answer in enumerate(answers):
                    at = when + timedelta(seconds=5 + n)
                    if answer.type is InteractionType.CLICK:
                        event_id = events.click(user.unit_key, answer.product_id, rec_id, event_time=at)
                        if n == 0 and user.unit_key.endswith("7"):  # a producer retry: the same event again
                            events.click(
                                user.unit_key, answer.product_id, rec_id, event_time=at, event_id=event_id
                            )
                    elif answer.type is InteractionType.ADD_TO_CART:
                        events.add_to_cart(user.unit_key, answer.product_id, rec_id, event_time=at)
                    else:
                        events.purchase(
                            user.unit_key, answer.product_id, answer.value, "EUR", rec_id, event_time=at
                        )
                events.click(user.unit_key, anchor.product_id, event_time=when)  # the organic page view
            raw.send(topics.interactions, key=b"user-000001", value=b"\x00not an interaction")
            mismatched = Interaction(
                "x", "user-000002", InteractionType.CLICK, when, product_id="p", recommendation_id="r"
            )
            raw.send(topics.interactions, key=b"someone-else", value=mismatched.to_bytes())
            poison += 2
            events.flush()
            raw.flush()
            if round_no == ROUNDS // 2 - 1:
                wait_for(
                    lambda: (
                        sum(c for c, _ in group_progress(kafka_settings, group, topics.interactions).values())
                        > 0
                    ),
                    90,
                    "the feedback service committed a first batch",
                )
                progress = group_progress(kafka_settings, group, topics.interactions)
                committed_at_kill = sum(c for c, _ in progress.values())
                total_at_kill = sum(e for _, e in progress.values())
                # SIGKILL, mid-transaction or between two: its partitions move to the other instance,
                # which restores them from the changelog; three more rounds follow
                feedback.kill()
                assert 0 < committed_at_kill <= total_at_kill
            if round_no == ROUNDS // 2:
                feedback = stack.start_feedback("feedback-3", **options)  # rejoins: partitions move again
        recorder.close()
        events.close()
        raw.close()

        def caught_up() -> bool:
            progress = group_progress(kafka_settings, group, topics.interactions)
            return all(c == e for c, e in progress.values())

        wait_for(caught_up, 120, "the feedback service committed the whole topic")
        time.sleep(1.0)  # the last results are in the last committed transaction already
        assert committed_at_kill > 0
        expected = recount(kafka_settings, topics.interactions)
        results = read_results(kafka_settings, topics.results)
        arms = results.arms()
        assert set(arms) == set(expected), (set(arms), set(expected))
        for arm, (n_units, impressions, clicks, carts, conversions, revenue) in expected.items():
            got = arms[arm]
            assert (got.units, got.impressions, got.clicks, got.add_to_carts, got.conversions) == (
                n_units,
                impressions,
                clicks,
                carts,
                conversions,
            ), arm
            assert got.revenue == pytest.approx(revenue, rel=1e-9)
        assert sum(a[1] for a in expected.values()) == USERS * ROUNDS  # every impression recorded

        dead = [r for records in read_topic(kafka_settings, topics.dead_letters).values() for r in records]
        assert len(dead) == poison
        reasons = Counter(dict(r.headers)[H_REASON].decode() for r in dead)
        assert reasons == {"undecodable": poison // 2, "key_mismatch": poison // 2}

        report = experiment_report(results)
        (entry,) = report["experiments"]
        assert entry["control"] == "popularity"
        assert entry["winner"] == "trained", entry
        assert feedback.alive() and other.alive()
    except AssertionError as e:  # say what the services were doing
        logs = "\n".join(f"--- {s.name} (alive: {s.alive()})\n{s.log_tail(30)}" for s in stack.services)
        raise AssertionError(f"{e}\n{logs}") from e
    finally:
        stack.stop()
