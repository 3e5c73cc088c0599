"""Bundle intents as queries, and their split by normalised intent text."""

from __future__ import annotations

import pytest

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset
from vitrine.data.intents import IntentSplitConfig, intent_queries, normalise_intent, split_intents


def _dataset(bundles: list[tuple[str, ...]], intents: list[str], products: int = 10) -> Dataset:
    catalogue = tuple(Product(product_id=f"p{i}", title=f"item {i}") for i in range(products))
    return Dataset("t", catalogue, bundles=tuple(bundles), bundle_intents=tuple(intents))


def test_normalise_intent_folds_case_punctuation_and_spaces() -> None:
    assert normalise_intent("  Camera  accessories!! ") == "camera accessories"
    assert normalise_intent("Akcesoria_do   APARATU") == "akcesoria do aparatu"


def test_bundles_with_one_intent_become_one_query_with_all_their_items() -> None:
    data = _dataset(
        [("p1", "p2"), ("p2", "p3"), ("p4", "p5"), ("p6", "p99"), ("p7", "p8")],
        ["Car audio", "car  AUDIO.", "Home network", "Garden", ""],
    )
    queries = intent_queries(data)
    by_key = {q.key: q for q in queries}
    # the untitled bundle is left out; p99 is outside the catalogue
    assert sorted(by_key) == ["car audio", "garden", "home network"]
    assert by_key["car audio"].items == ("p1", "p2", "p3")
    assert by_key["car audio"].bundles == 2
    assert by_key["car audio"].text == "Car audio"  # the first spelling, as a shopper wrote it
    assert by_key["garden"].items == ("p6",)


def test_no_intent_text_is_in_two_splits_and_the_split_is_reproducible() -> None:
    """The defect caught: splitting by bundle would put "car audio" (two bundles) in two splits."""
    bundles = [(f"p{i % 10}", f"p{(i + 1) % 10}") for i in range(400)]
    intents = [f"Intent number {i % 150}" if i % 2 else f"intent NUMBER {i % 150}!" for i in range(400)]
    data = _dataset(bundles, intents)
    config = IntentSplitConfig(seed=3, val_fraction=0.2, test_fraction=0.2)
    splits = split_intents(intent_queries(data), config)
    keys = {name: {q.key for q in qs} for name, qs in splits.items()}
    assert (
        not (keys["train"] & keys["val"])
        and not (keys["train"] & keys["test"])
        and not (keys["val"] & keys["test"])
    )
    assert sum(len(k) for k in keys.values()) == 150
    assert all(25 <= len(keys[name]) <= 90 for name in ("val", "test")), {k: len(v) for k, v in keys.items()}
    again = split_intents(intent_queries(data), IntentSplitConfig.from_dict(config.to_dict()))
    assert {n: [q.key for q in qs] for n, qs in again.items()} == {
        n: [q.key for q in qs] for n, qs in splits.items()
    }
    other = split_intents(
        intent_queries(data), IntentSplitConfig(seed=4, val_fraction=0.2, test_fraction=0.2)
    )
    assert {q.key for q in other["test"]} != keys["test"]


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.6, 0.5), (1.0, 0.0)])
def test_bad_split_fractions_are_refused(val: float, test: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        IntentSplitConfig(val_fraction=val, test_fraction=test)
