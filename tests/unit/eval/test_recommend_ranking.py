"""Ranking metrics on hand-made cases: filtered ranks, recall, nDCG, MRR, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitrine.eval.ranking import (
    METRICS,
    ScoreFn,
    evaluate_ranker,
    metrics_from_ranks,
    recall_curve,
    target_ranks,
)


def fixed_scores(matrix: np.ndarray) -> ScoreFn:
    return lambda queries: matrix[queries].copy()


def test_filtered_rank_ignores_the_query_and_other_positives() -> None:
    # 5 items; query 0 scores items 4 > 3 > 2 > 1; its positives are 2 and 4
    scores = np.zeros((5, 5))
    scores[0] = [9.0, 1.0, 2.0, 3.0, 4.0]
    queries, targets = np.array([0, 0]), np.array([2, 4])
    ranks, tops = target_ranks(fixed_scores(scores), queries, targets, {0: {2, 4}}, n_items=5, top_k=3)
    # target 2: item 4 (another positive) is filtered, the query too; only item 3 is above
    assert ranks.tolist() == [1, 0]
    # the top list is what a user would see: the query excluded, other positives included
    assert tops.tolist() == [[4, 3, 2]]


def test_metrics_from_known_ranks() -> None:
    ranks = np.array([0, 4, 9, 10, 60])
    tops = np.array([[0, 1], [1, 2]])
    m = metrics_from_ranks(ranks, tops, n_items=10)
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["recall@50"] == pytest.approx(4 / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(6) + 1 / math.log2(11)) / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 5 + 1 / 10 + 1 / 11 + 1 / 61) / 5)
    assert m["coverage"] == pytest.approx(3 / 10)
    assert set(m) == set(METRICS)


def test_recall_curve_is_monotone() -> None:
    curve = recall_curve(np.array([0, 3, 7, 20]), [1, 5, 10, 50])
    assert list(curve.values()) == [0.25, 0.5, 0.75, 1.0]


def test_ties_do_not_favour_the_target() -> None:
    # a constant ranker must land near the middle on average, not at rank 0
    n = 200
    scores = np.zeros((n, n))
    queries = np.arange(50)
    targets = (queries + 1) % n
    metrics, ranks = evaluate_ranker(fixed_scores(scores), queries, targets, {}, n_items=n)
    assert 50 < ranks.mean() < 150
    assert metrics["recall@10"] < 0.2


def test_perfect_ranker_scores_one() -> None:
    n = 6
    scores = np.eye(n)[[1, 2, 3, 4, 5, 0]]  # each query's best item is the next one
    queries = np.arange(n)
    metrics, _ = evaluate_ranker(fixed_scores(scores), queries, (queries + 1) % n, {}, n_items=n)
    assert metrics["recall@10"] == metrics["mrr"] == metrics["ndcg@10"] == 1.0
