"""Training pairs (co-view threshold, different-leaf complementarity) and the group-wise split."""

from __future__ import annotations

import pytest

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, load_dataset
from vitrine.data.pairs import (
    PairConfig,
    SplitConfig,
    complementary_pairs,
    product_splits,
    similar_pairs,
    split_pairs,
    task_pairs,
)


def item(pid: str, leaf: str, title: str | None = None) -> Product:
    return Product(product_id=pid, title=title or f"title {pid}", category_path=("Root", leaf))


@pytest.fixture
def dataset() -> Dataset:
    products = (
        item("a", "Phones"),
        item("b", "Phones"),
        item("c", "Cases"),
        item("d", "Cases"),
        item("e", "Cables"),
    )
    return Dataset(
        name="toy",
        products=products,
        sessions=(("a", "b"), ("a", "b", "c"), ("d", "unknown")),
        bundles=(("a", "c"), ("a", "b")),
        also_view=(("c", "d"),),
        also_buy=(("b", "e"), ("e", "e")),
    )


def test_similar_pairs_apply_the_co_view_threshold(dataset: Dataset) -> None:
    config = PairConfig(min_coview=1, similar_excludes_copurchase=False)
    once = similar_pairs(dataset, config)
    assert {("a", "b"), ("b", "a"), ("a", "c"), ("b", "c"), ("c", "d"), ("d", "c")} <= set(once)
    # unknown ids are ignored; a and b were co-viewed twice, everything else once
    twice = PairConfig(min_coview=2, similar_excludes_copurchase=False)
    assert similar_pairs(dataset, twice) == [("a", "b"), ("b", "a")]


def test_similar_pairs_exclude_co_purchased_pairs(dataset: Dataset) -> None:
    # a-b and a-c were also bought together (bundles): complements, not substitutes
    pairs = similar_pairs(dataset, PairConfig())
    assert ("a", "b") not in pairs and ("c", "a") not in pairs
    assert {("b", "c"), ("c", "b"), ("c", "d"), ("d", "c")} <= set(pairs)


def test_complementary_pairs_need_different_leaves(dataset: Dataset) -> None:
    pairs = complementary_pairs(dataset, PairConfig())
    assert ("a", "c") in pairs and ("c", "a") in pairs  # bundles: both directions
    assert ("b", "e") in pairs and ("e", "b") not in pairs  # also_buy keeps its direction
    assert ("a", "b") not in pairs  # same leaf: a substitute, not a complement
    assert not any(a == b for a, b in pairs)
    unfiltered = complementary_pairs(dataset, PairConfig(require_different_leaf=False))
    assert ("a", "b") in unfiltered


def test_oversized_groups_are_ignored(dataset: Dataset) -> None:
    config = PairConfig(max_group_size=2, similar_excludes_copurchase=False)
    assert similar_pairs(dataset, config) == sorted({("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")})


def test_unknown_task_lists_allowed_values(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="similar"):
        task_pairs(dataset, "inspire", PairConfig())


def test_split_is_seeded_and_roughly_proportional() -> None:
    products = load_dataset("synthetic:2000").products
    config = SplitConfig(seed=3, val_fraction=0.1, test_fraction=0.2)
    splits = product_splits(products, config)
    assert splits == product_splits(products, config)
    assert splits != product_splits(products, SplitConfig(seed=4, val_fraction=0.1, test_fraction=0.2))
    shares = {name: sum(1 for s in splits.values() if s == name) / len(products) for name in ("val", "test")}
    assert shares["val"] == pytest.approx(0.1, abs=0.03)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)


def test_duplicates_share_a_split() -> None:
    # same normalised title + brand = one group: variants never straddle train and test
    products = [Product(product_id=f"p{i}", title="Trail Shoe X", brand="Stridex") for i in range(20)]
    assert len(set(product_splits(products, SplitConfig()).values())) == 1
    # the group is title + brand alone, also where the served near-duplicate key reads the description
    # (a title that is only the brand): a trained model's split stays the one its card records
    same_brand = [
        Product(f"m{i}", "Acme Press", description=f"issue {i}", brand="Acme Press") for i in range(20)
    ]
    assert len(set(product_splits(same_brand, SplitConfig()).values())) == 1


def test_no_held_out_product_appears_in_training_pairs() -> None:
    dataset = load_dataset("synthetic:1000")
    splits = product_splits(dataset.products, SplitConfig())
    by_split = split_pairs(similar_pairs(dataset, PairConfig()), splits)
    assert all(len(v) > 0 for v in by_split.values())
    train_products = {p for pair in by_split["train"] for p in pair}
    assert all(splits[p] == "train" for p in train_products)
    for a, b in by_split["test"]:
        assert "test" in (splits[a], splits[b])
    # and no pair is in two splits
    seen = [set(v) for v in by_split.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_split_config_validation() -> None:
    with pytest.raises(ValueError):
        SplitConfig(val_fraction=0.6, test_fraction=0.5)
