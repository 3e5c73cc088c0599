"""Training data that renews itself, against a real broker: `vitrine train --dataset interactions:...`
reads the catalogue from its compacted topic and the co-view / co-purchase groups from the interaction
log (the pairs are the offline loaders' pairs for the same behaviour), and `vitrine refresh-prior`
writes a new complementary-prior version from the same log."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vitrine.cli.main import main
from vitrine.data.datasets import Dataset, load_dataset
from vitrine.data.pairs import PairConfig, task_pairs
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.feedback.publisher import InteractionPublisher
from vitrine.model.card import ModelCard
from vitrine.model.prior import read_prior
from vitrine.stream.kafka import KafkaSettings, make_admin, make_producer
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.topics import COMPACTED, TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def test_training_pairs_and_a_fresh_prior_come_from_the_interaction_log(
    kafka_settings: KafkaSettings,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = unique_name("mine")
    products_topic, interactions_topic = f"{base}.products", f"{base}.interactions"
    admin = make_admin(kafka_settings)
    ensure_topics(admin, [TopicSpec(products_topic, 2, 1, COMPACTED), TopicSpec(interactions_topic, 2)])
    admin.close()
    catalog = generate(SyntheticConfig(n_products=300, n_sessions=300, n_baskets=300))
    gone = catalog.products[-1].product_id
    with CatalogPublisher.connect(kafka_settings, products_topic) as publisher:
        for product in catalog.products:
            publisher.upsert(product, version=1)
        publisher.delete(gone, version=2)
    raw = make_producer(kafka_settings)
    raw.send(products_topic, key=b"junk", value=b"\xff not an event")  # skipped, not fatal
    raw.flush()
    raw.close()
    with InteractionPublisher.connect(kafka_settings, interactions_topic) as events:
        for i, session in enumerate(catalog.sessions):
            for j, pid in enumerate(session.product_ids):
                events.click(f"viewer-{i}", pid, event_time=T0 + timedelta(hours=i, seconds=30 * j))
        for i, basket in enumerate(catalog.baskets):
            for pid in basket.product_ids:
                events.purchase(
                    f"buyer-{i % 40}", pid, 10.0, "EUR", order_id=f"o{i}", event_time=T0 + timedelta(days=i)
                )
    spec = f"interactions:kafka://{kafka_settings.bootstrap_servers}?interactions={interactions_topic}&products={products_topic}"

    mined = load_dataset(spec)
    assert len(mined.products) == len(catalog.products) - 1 and gone not in mined.by_id()
    kept = mined.by_id()
    offline = Dataset(
        "offline",
        mined.products,
        sessions=tuple(tuple(p for p in s.product_ids if p in kept) for s in catalog.sessions),
        bundles=tuple(tuple(p for p in b.product_ids if p in kept) for b in catalog.baskets),
    )
    for task in ("similar", "complementary"):
        assert task_pairs(mined, task, PairConfig()) == task_pairs(offline, task, PairConfig()), task

    out = tmp_path / "model"
    train = [
        "train",
        "--task",
        "similar",
        "--dataset",
        spec,
        "--out",
        str(out),
        "--untrained",
        "--no-progress",
    ]
    assert main(["--log-level", "WARNING", *train]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"]["train"] > 100
    assert json.loads((out / "model.json").read_text())["data"]

    complementary = tmp_path / "complementary"
    complementary.mkdir()
    ModelCard("complementary-t", "complementary", 8, True, "", {}, {}, {}).save(complementary)
    assert (
        main(["--log-level", "WARNING", "refresh-prior", "--model", str(complementary), "--dataset", spec])
        == 0
    )
    reply = json.loads(capsys.readouterr().out)
    prior = read_prior(complementary)
    assert prior is not None and prior.version == reply["prior_version"] and reply["pairs"] > 100
    assert set(prior.complementary_map["Laptops"][:3]) <= set(catalog.complementary_map["Laptops"])
