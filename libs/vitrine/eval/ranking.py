"""Ranking metrics over (query, target) pairs with exact scoring of the whole catalogue (numpy only).

A ranker is a function `scores(query_indices) -> float [q, N]` (higher = better) over the catalogue.
Each pair is ranked in the *filtered* setting: the query itself and the query's other known
positives are removed from the candidates, so a pair is not penalised for the model ranking
another true answer first. Ties are broken by a fixed pseudo-random jitter (no ranker gains from
a tie-breaking order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

METRICS = ("recall@10", "recall@50", "ndcg@10", "mrr", "coverage")
ScoreFn = Callable[[np.ndarray], np.ndarray]
CHUNK = 256


def target_ranks(
    score_fn: ScoreFn,
    queries: np.ndarray,
    targets: np.ndarray,
    positives: Mapping[int, set[int]],
    n_items: int,
    top_k: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """0-based filtered rank of each pair's target, and the top-`top_k` list of each unique query.

    Returns (ranks [P], top [U, top_k]) where U are the unique queries in sorted order.
    """
    jitter = np.random.default_rng(seed).random(n_items).astype(np.float64) * 1e-9
    unique = np.unique(queries)
    ranks = np.zeros(len(queries), dtype=np.int64)
    tops = np.zeros((len(unique), min(top_k, max(n_items - 1, 0))), dtype=np.int64)
    row_of = {int(q): i for i, q in enumerate(unique)}
    pairs_of: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        pairs_of.setdefault(int(q), []).append(i)
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        scores = np.asarray(score_fn(chunk), dtype=np.float64) + jitter
        for r, q in enumerate(chunk):
            q = int(q)
            row = scores[r]
            row[q] = -np.inf
            known = positives.get(q, set())
            own = row.copy()
            if known:
                row[list(known)] = -np.inf  # filtered setting: other true answers are not competitors
            for i in pairs_of[q]:
                t = int(targets[i])
                target_score = own[t]
                ranks[i] = int((row > target_score).sum())
            top_candidates = own.copy()
            top_candidates[q] = -np.inf
            k = tops.shape[1]
            if k:
                part = np.argpartition(-top_candidates, k - 1)[:k]
                tops[row_of[q]] = part[np.argsort(-top_candidates[part], kind="stable")]
    return ranks, tops


def metrics_from_ranks(ranks: np.ndarray, tops: np.ndarray, n_items: int) -> dict[str, float]:
    if len(ranks) == 0:
        return dict.fromkeys(METRICS, 0.0)
    ranks = np.asarray(ranks)
    ndcg = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {
        "recall@10": float((ranks < 10).mean()),
        "recall@50": float((ranks < 50).mean()),
        "ndcg@10": float(ndcg.mean()),
        "mrr": float((1.0 / (ranks + 1.0)).mean()),
        "coverage": float(len(np.unique(tops)) / n_items) if tops.size else 0.0,
    }


def recall_curve(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    ranks = np.asarray(ranks)
    return {int(k): float((ranks < k).mean()) if len(ranks) else 0.0 for k in ks}


def evaluate_ranker(
    score_fn: ScoreFn,
    queries: np.ndarray,
    targets: np.ndarray,
    positives: Mapping[int, set[int]],
    n_items: int,
    seed: int = 0,
) -> tuple[dict[str, float], np.ndarray]:
    """The five metrics and the per-pair ranks (for curves)."""
    ranks, tops = target_ranks(score_fn, queries, targets, positives, n_items, seed=seed)
    return metrics_from_ranks(ranks, tops, n_items), ranks
