"""`evaluate`: pair selection (test split vs all pairs), complementary serving order, baselines, JSON shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, load_dataset, parse_spec
from vitrine.data.pairs import PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
from vitrine.eval.recommend import complementary_scores, evaluate, fallback_targets, select_pairs
from vitrine.model.card import ModelCard
from vitrine.model.category_map import CategoryPrior, mine_category_prior


class LeafTowers:
    """Fake towers: one-hot vectors of the leaf category (a perfect 'same leaf' model)."""

    def __init__(self, products: Sequence[Product], prior: CategoryPrior | None = None) -> None:
        self.leaves = sorted({p.leaf_category for p in products})
        self.complementary_map: dict[str, list[str]] = {}
        self.temperature = 1.0
        self.prior = prior

    def complementary_targets(self, leaf: str, n: int) -> list[tuple[str, float]]:
        if self.prior is None:
            raise AssertionError("this fake has no prior")
        return self.prior.targets(leaf, n)

    def _onehot(self, leaves: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(leaves), len(self.leaves)), dtype=np.float32)
        for i, leaf in enumerate(leaves):
            out[i, self.leaves.index(leaf)] = 1.0
        return out

    def encode_items(self, products: Sequence[Product]) -> np.ndarray:
        return self._onehot([p.leaf_category for p in products])

    def encode_complementary_queries(self, products: Sequence[Product], targets: Sequence[str]) -> np.ndarray:
        return self._onehot(list(targets))


def card(task: str, spec: str, complementary_map: dict[str, list[str]] | None = None) -> ModelCard:
    return ModelCard(
        model_version=f"{task}-test",
        task=task,
        dim=8,
        untrained=False,
        created_at="",
        features={},
        encoder={},
        train={},
        complementary_map=complementary_map or {},
        pairs=PairConfig().to_dict(),
        split=SplitConfig().to_dict(),
        data={"datasets": [{"spec": spec, "path": spec.split(":", 1)[1]}]},
    )


def test_trained_dataset_uses_only_its_test_split() -> None:
    spec = parse_spec("synthetic:400")
    dataset = load_dataset(spec)
    pairs = select_pairs(dataset, spec, "similar", card("similar", "synthetic:400"))
    expected = split_pairs(
        task_pairs(dataset, "similar", PairConfig()), product_splits(dataset.products, SplitConfig())
    )["test"]
    assert pairs.mode == "test_split" and len(pairs.queries) == len(expected)
    assert pairs.reference_counts is not None
    unseen = select_pairs(dataset, spec, "similar", card("similar", "synthetic:999"))
    assert unseen.mode == "all_pairs" and len(unseen.queries) > len(pairs.queries)
    assert unseen.reference_counts is None


def test_evaluate_gives_the_issue_json_and_a_same_leaf_model_beats_random() -> None:
    spec = parse_spec("synthetic:400")
    dataset = load_dataset(spec)
    towers = LeafTowers(dataset.products)
    result = evaluate(
        towers,
        card("similar", "synthetic:400"),
        dataset,
        spec,
        "similar",
        baselines=("random", "popularity", "tfidf"),
    )
    out = result.to_json()
    assert set(out) == {"model", "baselines", "pairs"}
    assert set(out["baselines"]) == {"random", "popularity", "tfidf"}
    assert set(out["model"]) == {"recall@10", "recall@50", "ndcg@10", "mrr", "coverage"}
    assert out["pairs"] == len(result.ranks["model"])
    # synthetic sessions stay mostly inside one leaf: a same-leaf ranker is far above random
    assert out["model"]["recall@50"] > 2 * out["baselines"]["random"]["recall@50"]


def test_complementary_model_is_evaluated_through_its_category_prior() -> None:
    spec = parse_spec("synthetic:400")
    dataset = load_dataset(spec)
    pairs = task_pairs(dataset, "complementary", PairConfig())
    prior = mine_category_prior(pairs, dataset.by_id())
    towers = LeafTowers(dataset.products, prior)
    model_card = card("complementary", "synthetic:400")
    result = evaluate(
        towers, model_card, dataset, spec, "complementary", baselines=("random",), targets_per_query=3
    )
    # the same-leaf fake retrieves the prior's target categories: far above chance on basket pairs
    assert result.model["recall@50"] > 3 * result.baselines["random"]["recall@50"]


def test_leave_one_out_popularity_on_an_unseen_dataset() -> None:
    spec = parse_spec("synthetic:400")
    dataset = load_dataset(spec)
    result = evaluate(
        LeafTowers(dataset.products),
        card("similar", "synthetic:1"),
        dataset,
        spec,
        "similar",
        baselines=("popularity",),
    )
    assert 0.0 <= result.baselines["popularity"]["recall@50"] <= 1.0
    assert result.baselines["popularity"]["coverage"] < 0.1  # the same list for everyone


def test_complementary_serving_interleaves_target_categories() -> None:
    products = [
        Product("q", "phone", category_path=("R", "Phones")),
        Product("c1", "case", category_path=("R", "Cases")),
        Product("c2", "case 2", category_path=("R", "Cases")),
        Product("s1", "protector", category_path=("R", "Protectors")),
        Product("x", "mug", category_path=("R", "Mugs")),
    ]
    towers = LeafTowers(products)
    towers.complementary_map = {"Phones": ["Cases", "Protectors"]}
    score = complementary_scores(towers, products, towers.encode_items(products), 2, merge="interleave")
    order = np.argsort(-score(np.array([0]))[0], kind="stable")
    ids = [products[i].product_id for i in order]
    # round-robin over targets (Cases, Protectors, Cases, ...), then the rest of the catalogue
    assert ids[:3] == ["c1", "s1", "c2"] or ids[:3] == ["c2", "s1", "c1"]
    assert set(ids[3:]) == {"q", "x"}


def test_complementary_score_merge_weighs_categories_by_their_prior() -> None:
    products = [
        Product("q", "phone", category_path=("R", "Phones")),
        Product("c1", "case", category_path=("R", "Cases")),
        Product("s1", "protector", category_path=("R", "Protectors")),
        Product("x", "mug", category_path=("R", "Mugs")),
    ]
    prior = CategoryPrior(
        support={"Phones": {"Cases": 1, "Protectors": 9}},
        totals={"Phones": 10},
        share={"Cases": 0.5, "Protectors": 0.5},
    )
    assert [t for t, _ in prior.targets("Phones", 5)] == ["Protectors", "Cases"]
    assert prior.targets("Phones", 5)[0][1] == pytest.approx((9 + 0.5) / 11)
    assert prior.targets("Unknown leaf", 5)[0][1] == pytest.approx(0.5)  # backs off to the global share
    towers = LeafTowers(products, prior)
    score = complementary_scores(towers, products, towers.encode_items(products), 2, merge="score")
    order = np.argsort(-score(np.array([0]))[0], kind="stable")
    assert [products[i].product_id for i in order][:2] == ["s1", "c1"]
    with pytest.raises(ValueError, match="interleave"):
        complementary_scores(towers, products, towers.encode_items(products), 2, merge="max")


def test_fallback_targets_are_the_maps_most_common() -> None:
    mapping = {"A": ["X", "Y"], "B": ["X"], "C": ["Y", "Z"]}
    assert fallback_targets(mapping, 2) == ["X", "Y"]


def test_unknown_baseline_is_rejected() -> None:
    spec = parse_spec("synthetic:200")
    dataset: Dataset = load_dataset(spec)
    with pytest.raises(ValueError, match="allowed"):
        evaluate(
            LeafTowers(dataset.products),
            card("similar", "synthetic:200"),
            dataset,
            spec,
            "similar",
            baselines=("bm25",),
        )
