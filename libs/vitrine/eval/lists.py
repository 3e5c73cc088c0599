"""Metrics of one served list against a set of relevant items (numpy only).

A query here has several relevant items (the items of an intent's bundles, the rest of a user's
history), and what is judged is the list a placement returns, at most `LIST_LENGTH` items:

- `recall@k`: share of the relevant items in the first k;
- `ndcg@10`: binary gains, log2 discounts, divided by the ideal DCG of min(|relevant|, 10) hits;
- `mrr`: 1 / rank of the first relevant item in the list, 0 when none is in it (so it is mrr@50);
- `categories@10`: distinct leaf categories among the first 10;
- `ild@10`: intra-list diversity, mean pairwise cosine distance (1 - cos) of the first 10 items'
  vectors in the model's item space;
- `novel_share@10`: share of the first 10 whose leaf category is none of `known_leaves`.

`coverage` is a property of all lists together: distinct items in the top 10s / catalogue size.
Every function averages over queries (each query weighs the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LIST_LENGTH = 50
RELEVANCE_METRICS = ("recall@10", "recall@50", "ndcg@10", "mrr")


def relevance(ranked: Sequence[str], relevant: Iterable[str]) -> dict[str, float]:
    rel = set(relevant)
    if not rel:
        raise ValueError("a query needs at least one relevant item")
    hits = [i for i, item in enumerate(ranked[:LIST_LENGTH]) if item in rel]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(rel), 10)))
    return {
        "recall@10": sum(1 for i in hits if i < 10) / len(rel),
        "recall@50": sum(1 for i in hits if i < 50) / len(rel),
        "ndcg@10": sum(1.0 / np.log2(i + 2) for i in hits if i < 10) / ideal,
        "mrr": 1.0 / (hits[0] + 1) if hits else 0.0,
    }


def intra_list_distance(vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance of the rows (L2-normalised); 0 for fewer than two rows."""
    n = len(vectors)
    if n < 2:
        return 0.0
    cos = vectors @ vectors.T
    return float((n * n - cos.sum()) / (n * (n - 1)))  # the diagonal contributes 1 - 1 = 0


def diversity(
    ranked: Sequence[str],
    leaves: Mapping[str, str],
    vectors: Mapping[str, np.ndarray],
    known_leaves: Iterable[str] = (),
) -> dict[str, float]:
    top = list(ranked[:10])
    known = set(known_leaves)
    if not top:
        return {"categories@10": 0.0, "ild@10": 0.0, "novel_share@10": 0.0}
    return {
        "categories@10": float(len({leaves[i] for i in top})),
        "ild@10": intra_list_distance(np.stack([vectors[i] for i in top])),
        "novel_share@10": sum(leaves[i] not in known for i in top) / len(top),
    }


@dataclass(slots=True)
class MetricMeans:
    """Running means of per-query metrics, plus the distinct items of every top 10 (coverage)."""

    catalogue_size: int
    sums: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    seen: set[str] = field(default_factory=set)

    def add(self, ranked: Sequence[str], values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.queries += 1
        self.seen.update(ranked[:10])

    def means(self, with_coverage: bool = False) -> dict[str, float]:
        out = {k: v / self.queries if self.queries else 0.0 for k, v in self.sums.items()}
        if with_coverage:
            out["coverage"] = len(self.seen) / self.catalogue_size if self.catalogue_size else 0.0
        return out
