"""Retrieval metrics and embedding geometry on small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitrine.data.retrieval import RetrievalSet
from vitrine.eval.retrieval import (
    alignment,
    evaluate_retrieval,
    mrr_at_k,
    ndcg_at_k,
    rank,
    ranking_metrics,
    recall_at_k,
    uniformity,
)


def test_ndcg_binary_relevance_by_hand() -> None:
    # Relevant documents at ranks 2 and 4; ideal puts them at ranks 1 and 2.
    ranked = ["a", "b", "c", "d"]
    relevant = {"b": 1, "d": 1}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevant) == pytest.approx(dcg / idcg)


def test_ndcg_uses_graded_gains_and_cuts_at_k() -> None:
    ranked = ["x", "y"]
    relevant = {"y": 2, "x": 1}
    assert ndcg_at_k(ranked, relevant) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    # A relevant document just past the cut-off earns nothing.
    assert ndcg_at_k([f"n{i}" for i in range(10)] + ["hit"], {"hit": 1}, k=10) == 0.0


def test_mrr_and_recall() -> None:
    ranked = ["n1", "n2", "r1", "n3", "r2"]
    relevant = {"r1": 1, "r2": 1, "r3": 1}
    assert mrr_at_k(ranked, relevant) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, relevant, k=2) == 0.0
    assert recall_at_k(ranked, relevant, k=100) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, relevant, k=3) == pytest.approx(1 / 3)


def test_ranking_metrics_average_over_queries_with_a_relevant_document() -> None:
    rankings = {"q1": ["a", "b"], "q2": ["b", "a"], "q3": ["a"]}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {}}
    metrics = ranking_metrics(rankings, qrels)
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["recall@100"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_ranking_metrics_rejects_queries_without_judgements() -> None:
    with pytest.raises(ValueError, match="no query"):
        ranking_metrics({"q": ["a"]}, {"q": {"a": 0}})


def test_alignment_is_mean_squared_distance() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.0, -1.0]])
    # distances squared: 0 and 4
    assert alignment(x, y) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        alignment(x, y[:1])


def test_uniformity_by_hand() -> None:
    # Three unit vectors: two orthogonal pairs (d^2 = 2) and one identical pair (d^2 = 0).
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    expected = math.log((math.exp(0.0) + 2 * math.exp(-4.0)) / 3)
    assert uniformity(x) == pytest.approx(expected)
    # Chunking must not change the result.
    assert uniformity(x, chunk=1) == pytest.approx(expected)


def test_uniformity_is_lower_for_spread_out_points() -> None:
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(200, 8))
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    clustered = spread * 0.05 + np.array([1.0] + [0.0] * 7)
    clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
    assert uniformity(spread) < uniformity(clustered)


def test_rank_orders_by_score_keeps_ties_stable_and_excludes() -> None:
    queries = np.array([[1.0, 0.0]])
    docs = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    assert rank(queries, docs, k=4).tolist() == [[1, 2, 3, 0]]
    assert rank(queries, docs, k=2, exclude=[[1]]).tolist() == [[2, 3]]


def test_evaluate_retrieval_on_a_tiny_collection() -> None:
    rset = RetrievalSet(
        "tiny",
        queries={"q1": "first", "q2": "second", "q3": "unjudged"},
        corpus={"d1": "a", "d2": "b", "d3": "c"},
        qrels={"q1": {"d1": 1}, "q2": {"d3": 1}},
        ignore={"q2": {"d2"}},
    )
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    metrics = evaluate_retrieval(rset, q, d)
    # q1 finds d1 first; q2 would rank d2 first but it is excluded, so d3 is first.
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["mrr@10"] == pytest.approx(1.0)
    assert metrics["recall@100"] == pytest.approx(1.0)
    # positive pairs: (q1, d1) at distance 0, (q2, d3) at squared distance 2 - 2 * 0.8
    assert metrics["alignment"] == pytest.approx((0.0 + 0.4) / 2)
    assert set(metrics) == {"ndcg@10", "mrr@10", "recall@100", "alignment", "uniformity"}
    assert all(isinstance(v, float) for v in metrics.values())


def test_evaluate_retrieval_checks_embedding_counts() -> None:
    rset = RetrievalSet("tiny", {"q": "x"}, {"d": "y"}, {"q": {"d": 1}})
    with pytest.raises(ValueError, match="expected 1 query"):
        evaluate_retrieval(rset, np.zeros((2, 2)), np.zeros((1, 2)))
