"""`evaluate`: pair selection (test split vs all pairs), the complementary model through its served path
(a real Qdrant Edge shard), baselines, JSON shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, load_dataset, parse_spec
from vitrine.data.pairs import PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
from vitrine.data.synthetic import COMPLEMENTARY_MAP
from vitrine.eval.recommend import evaluate, select_pairs
from vitrine.model.card import ModelCard
from vitrine.model.config import RetrievalConfig


class LeafTowers:
    """Fake towers: one-hot vectors of the leaf category (a perfect 'same leaf' model). Its "any
    category" complementary query points at the leaves `complements` lists for the product's leaf."""

    model_version = "fake-1"
    temperature = 1.0
    retrieval = RetrievalConfig(lexical_weight=0.0)  # the tower's order only
    lexical = None

    def __init__(
        self, products: Sequence[Product], complements: dict[str, Sequence[str]] | None = None
    ) -> None:
        self.leaves = sorted({p.leaf_category for p in products})
        self.dim = len(self.leaves)
        self.complements = complements or {}

    def _onehot(self, leaves: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(leaves), len(self.leaves)), dtype=np.float32)
        for i, row in enumerate(leaves):
            for leaf in row:
                out[i, self.leaves.index(leaf)] = 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def encode_items(self, products: Sequence[Product]) -> np.ndarray:
        return self._onehot([[p.leaf_category] for p in products])

    def assign_clusters(self, vectors: np.ndarray) -> np.ndarray:
        return np.full(len(vectors), -1, dtype=np.int32)

    def encode_complementary_queries(self, products: Sequence[Product], targets: Sequence[str]) -> np.ndarray:
        wanted = [
            [t] if t else list(self.complements.get(p.leaf_category, ()))
            for p, t in zip(products, targets, strict=True)
        ]
        return self._onehot(wanted)


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
        baselines=("random", "popularity", "tfidf", "bm25", "two_hop", "two_hop_tfidf"),
    )
    out = result.to_json()
    assert set(out) == {"model", "baselines", "pairs"}
    assert set(out["baselines"]) == {"random", "popularity", "tfidf", "bm25", "two_hop", "two_hop_tfidf"}
    assert set(out["model"]) == {"recall@10", "recall@50", "ndcg@10", "mrr", "coverage"}
    assert out["pairs"] == len(result.ranks["model"])
    # synthetic sessions stay mostly inside one leaf: a same-leaf ranker is far above random
    assert out["model"]["recall@50"] > 2 * out["baselines"]["random"]["recall@50"]


def test_complementary_model_is_evaluated_through_its_served_path() -> None:
    spec = parse_spec("synthetic:400")
    dataset = load_dataset(spec)
    towers = LeafTowers(dataset.products, {a: list(b) for a, b in COMPLEMENTARY_MAP.items()})
    model_card = card("complementary", "synthetic:400")
    result = evaluate(towers, model_card, dataset, spec, "complementary", baselines=("random", "two_hop"))
    # a fake that knows the generator's complementary categories, served through a real Edge shard:
    # far above chance on basket pairs, and never its own leaf
    assert result.model["recall@50"] > 3 * result.baselines["random"]["recall@50"]
    blind = LeafTowers(dataset.products, {})  # no complements known: its query is the zero vector
    blind_result = evaluate(blind, model_card, dataset, spec, "complementary", baselines=())
    assert blind_result.model["recall@50"] < result.model["recall@50"] / 2


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
            baselines=("bm25s",),
        )
