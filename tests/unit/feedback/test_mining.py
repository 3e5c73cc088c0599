from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vitrine.data.datasets import Dataset
from vitrine.data.pairs import PairConfig, task_pairs
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.errors import ConfigError
from vitrine.feedback.interactions import Interaction, InteractionType, ShownList
from vitrine.feedback.mining import InteractionSource, MiningConfig, mine_dataset
from vitrine.feedback.priors import refresh_prior
from vitrine.model.card import ModelCard
from vitrine.model.prior import PRIOR_FILE, read_prior

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def log_of(catalog) -> list[Interaction]:  # type: ignore[no-untyped-def]
    """The synthetic sessions as clicks (one unit each, an hour apart) and the baskets as orders."""
    events = []
    for i, session in enumerate(catalog.sessions):
        for j, pid in enumerate(session.product_ids):
            events.append(
                Interaction(
                    f"s{i}-{j}", f"viewer-{i}", InteractionType.CLICK, T0 + timedelta(seconds=j * 30), pid
                )
            )
    for i, basket in enumerate(catalog.baskets):
        for j, pid in enumerate(basket.product_ids):
            events.append(
                Interaction(
                    f"b{i}-{j}",
                    f"buyer-{i % 50}",
                    InteractionType.PURCHASE,
                    T0 + timedelta(days=i),
                    pid,
                    value=1.0,
                    currency="EUR",
                    order_id=f"o{i}",
                )
            )
    events.append(
        Interaction(
            "imp",
            "viewer-0",
            InteractionType.IMPRESSION,
            T0,
            recommendation_id="r",
            shown=ShownList(("p000001",), "e", "v"),
        )
    )
    events.append(Interaction("gone", "viewer-0", InteractionType.CLICK, T0, "not-in-catalogue"))
    return events


def test_pairs_mined_from_the_log_follow_the_offline_loaders_rules() -> None:
    catalog = generate(SyntheticConfig(n_products=300, n_sessions=200, n_baskets=150))
    offline = Dataset(
        "synthetic",
        catalog.products,
        sessions=tuple(s.product_ids for s in catalog.sessions),
        bundles=tuple(b.product_ids for b in catalog.baskets),
    )
    mined = mine_dataset(catalog.products, reversed(log_of(catalog)))  # arrival order does not matter
    for task in ("similar", "complementary"):
        for config in (PairConfig(), PairConfig(min_coview=2)):
            assert task_pairs(mined, task, config) == task_pairs(offline, task, config), task
    report = mined.reports[0]
    assert report.skipped == {"impression": 1, "product_outside_catalogue": 1}


def test_a_session_ends_after_a_gap_and_purchases_without_an_order_group_by_session() -> None:
    catalog = generate(SyntheticConfig(n_products=60))
    a, b, c, d = (p.product_id for p in catalog.products[:4])
    events = [
        Interaction("1", "u", InteractionType.CLICK, T0, a),
        Interaction("2", "u", InteractionType.ADD_TO_CART, T0 + timedelta(minutes=5), b),
        Interaction(
            "3", "u", InteractionType.PURCHASE, T0 + timedelta(minutes=6), b, value=1, currency="EUR"
        ),
        Interaction(
            "4", "u", InteractionType.PURCHASE, T0 + timedelta(minutes=7), c, value=1, currency="EUR"
        ),
        Interaction("5", "u", InteractionType.CLICK, T0 + timedelta(hours=2), c),
        Interaction("6", "u", InteractionType.CLICK, T0 + timedelta(hours=2, minutes=1), d),
    ]
    mined = mine_dataset(catalog.products, events, MiningConfig(session_gap_s=1800))
    assert mined.sessions == ((a, b), (c, d))
    assert mined.bundles == ((b, c),)


def test_the_interactions_spec_names_the_broker_and_topics() -> None:
    source = InteractionSource.parse("kafka://127.0.0.1:9092?interactions=x.i&products=x.p&days=30")
    assert (source.bootstrap_servers, source.interactions_topic, source.products_topic, source.days) == (
        "127.0.0.1:9092",
        "x.i",
        "x.p",
        30.0,
    )
    for bad in ("127.0.0.1:9092", "kafka://h:1?colour=red", "kafka://h:1?days=many"):
        with pytest.raises(ConfigError):
            InteractionSource.parse(bad)


def test_a_refreshed_prior_is_a_new_version_next_to_the_model(tmp_path: Path) -> None:
    catalog = generate(SyntheticConfig(n_products=300, n_baskets=400))
    card = ModelCard("complementary-x", "complementary", 8, True, "", {}, {}, {})
    card.save(tmp_path)
    mined = mine_dataset(catalog.products, log_of(catalog))
    first = refresh_prior(tmp_path, mined)
    assert read_prior(tmp_path) == first and (tmp_path / PRIOR_FILE).is_file()
    # the mined map recovers the ground truth's top complement for the laptop leaf
    assert first.complementary_map["Laptops"][0] == catalog.complementary_map["Laptops"][0]
    late = T0 + timedelta(days=200)
    later = [e for e in log_of(catalog) if e.type is InteractionType.PURCHASE and e.event_time > late]
    second = refresh_prior(tmp_path, mine_dataset(catalog.products, later))
    assert second.version != first.version and read_prior(tmp_path) == second
    with pytest.raises(ConfigError):
        refresh_prior(tmp_path, mined, min_pairs=10**9)
