"""The complementary-category map miner: support, confidence, lift, ranking; recovery of a known map."""

from __future__ import annotations

import pytest

from vitrine.catalog.schema import Product
from vitrine.data.datasets import load_dataset
from vitrine.data.pairs import PairConfig, complementary_pairs
from vitrine.data.synthetic import COMPLEMENTARY_MAP
from vitrine.model.category_map import CategoryMapConfig, mine_category_stats, mine_complementary_map


def catalogue(leaves: dict[str, str]) -> dict[str, Product]:
    return {
        pid: Product(product_id=pid, title=pid, category_path=("Root", leaf)) for pid, leaf in leaves.items()
    }


@pytest.fixture
def products() -> dict[str, Product]:
    return catalogue(
        {
            "phone1": "Phones",
            "phone2": "Phones",
            "case1": "Cases",
            "case2": "Cases",
            "cable": "Cables",
            "mug": "Mugs",
        }
    )


def test_statistics_on_a_hand_counted_example(products: dict[str, Product]) -> None:
    pairs = [
        ("phone1", "case1"),
        ("phone2", "case2"),
        ("phone1", "case2"),  # Phones -> Cases: 3
        ("phone1", "cable"),  # Phones -> Cables: 1
        ("case1", "phone1"),  # Cases -> Phones: 1
        ("mug", "cable"),  # Mugs -> Cables: 1
        ("phone1", "phone2"),  # same leaf: ignored
    ]
    stats = mine_category_stats(pairs, products, CategoryMapConfig(min_support=1, min_lift=0.0))
    # 6 cross-leaf pairs; targets: Cases 3, Cables 2, Phones 1
    phones = {t.target: t for t in stats["Phones"]}
    assert phones["Cases"].support == 3
    assert phones["Cases"].confidence == pytest.approx(3 / 4)
    assert phones["Cases"].lift == pytest.approx((3 / 4) / (3 / 6))
    assert phones["Cables"].lift == pytest.approx((1 / 4) / (2 / 6))
    assert [t.target for t in stats["Phones"]] == ["Cases", "Cables"]  # ranked by confidence
    assert stats["Mugs"][0].lift == pytest.approx(1.0 / (2 / 6))


def test_min_support_and_min_lift_filter(products: dict[str, Product]) -> None:
    pairs = [
        ("phone1", "case1"),
        ("phone2", "case2"),
        ("phone1", "cable"),
        ("mug", "cable"),
        ("mug", "cable"),
    ]
    mined = mine_complementary_map(pairs, products, CategoryMapConfig(min_support=2, min_lift=0.0))
    assert mined == {"Phones": ["Cases"], "Mugs": ["Cables"]}
    # Phones -> Cables has lift (1/3)/(3/5) < 1: a target bought with everything is dropped
    lifted = mine_complementary_map(pairs, products, CategoryMapConfig(min_support=1, min_lift=1.0))
    assert "Cables" not in lifted["Phones"]


def test_max_targets_and_determinism(products: dict[str, Product]) -> None:
    pairs = [("phone1", "case1"), ("phone1", "cable"), ("phone1", "mug")]
    config = CategoryMapConfig(min_support=1, min_lift=0.0, max_targets=2)
    first = mine_complementary_map(pairs, products, config)
    assert first == mine_complementary_map(list(reversed(pairs)), products, config)
    assert len(first["Phones"]) == 2
    assert first["Phones"] == ["Cables", "Cases"]  # equal statistics: alphabetical


def test_empty_input_gives_an_empty_map(products: dict[str, Product]) -> None:
    assert mine_complementary_map([], products, CategoryMapConfig()) == {}


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        CategoryMapConfig(min_support=0)


def test_recovers_the_synthetic_ground_truth() -> None:
    dataset = load_dataset("synthetic:1000")
    pairs = complementary_pairs(dataset, PairConfig())
    mined = mine_complementary_map(pairs, dataset.by_id(), CategoryMapConfig())
    # baskets are unordered, so a relation shows up in both directions: every true target is mined,
    # and every anchor's top mined target is a true complement in one direction or the other
    for anchor, targets in COMPLEMENTARY_MAP.items():
        assert set(targets) <= set(mined[anchor]), anchor
        related = set(targets) | {a for a, ts in COMPLEMENTARY_MAP.items() if anchor in ts}
        assert mined[anchor][0] in related, anchor
