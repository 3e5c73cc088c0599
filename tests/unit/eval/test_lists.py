"""Metrics of one served list: relevance against several relevant items, and list diversity."""

from __future__ import annotations

import numpy as np
import pytest

from vitrine.eval.lists import MetricMeans, diversity, intra_list_distance, relevance


def test_relevance_of_a_list_with_hits_at_ranks_2_and_12() -> None:
    ranked = [f"x{i}" for i in range(50)]
    ranked[1], ranked[11] = "a", "b"
    got = relevance(ranked, {"a", "b", "c", "d"})
    assert got["recall@10"] == pytest.approx(0.25)
    assert got["recall@50"] == pytest.approx(0.5)
    assert got["mrr"] == pytest.approx(0.5)
    ideal = sum(1 / np.log2(i + 2) for i in range(4))
    assert got["ndcg@10"] == pytest.approx((1 / np.log2(3)) / ideal)


def test_items_past_the_list_length_do_not_count() -> None:
    ranked = [f"x{i}" for i in range(60)] + ["a"]
    assert relevance(ranked, {"a"}) == {"recall@10": 0.0, "recall@50": 0.0, "ndcg@10": 0.0, "mrr": 0.0}
    with pytest.raises(ValueError, match="relevant"):
        relevance(ranked, set())


def test_intra_list_distance_is_mean_pairwise_cosine_distance() -> None:
    same = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (3, 1))
    assert intra_list_distance(same) == pytest.approx(0.0)
    orthogonal = np.eye(3, dtype=np.float32)
    assert intra_list_distance(orthogonal) == pytest.approx(1.0)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    assert intra_list_distance(opposite) == pytest.approx(2.0)
    assert intra_list_distance(orthogonal[:1]) == 0.0


def test_diversity_counts_leaves_and_novel_share_against_the_history() -> None:
    leaves = {"a": "Cables", "b": "Cables", "c": "Mice", "d": "Desks"}
    vectors = {k: np.eye(4, dtype=np.float32)[i] for i, k in enumerate("abcd")}
    got = diversity(["a", "b", "c", "d"], leaves, vectors, known_leaves={"Cables"})
    assert got["categories@10"] == 3.0
    assert got["novel_share@10"] == pytest.approx(0.5)
    assert got["ild@10"] == pytest.approx(1.0)


def test_coverage_is_distinct_top10_items_over_the_catalogue() -> None:
    means = MetricMeans(catalogue_size=20)
    means.add([f"i{k}" for k in range(10)], {"recall@10": 1.0})
    means.add([f"i{k}" for k in range(5, 15)], {"recall@10": 0.0})
    got = means.means(with_coverage=True)
    assert got == {"recall@10": 0.5, "coverage": 0.75}
