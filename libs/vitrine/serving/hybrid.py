"""Hybrid re-scoring of a tower's nearest candidates: the tower's score blended with a lexical one.

Complementary serving and Inspire(intent) both re-rank their tower's candidates by
(q.v + w x lexical cosine) / (1 + w): a weighted mean of two cosines, so the API's contract that a
score lies in [-1, 1] holds, in the order of q.v + w x lexical cosine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vitrine.index.port import ScoredItem


def blend(
    hits: Sequence[ScoredItem], lexical: Callable[[ScoredItem], float], weight: float
) -> list[ScoredItem]:
    """`hits` re-scored by (score + weight x lexical(hit)) / (1 + weight), best first."""
    scored = [
        ScoredItem(h.product_id, (h.score + weight * lexical(h)) / (1.0 + weight), h.payload) for h in hits
    ]
    scored.sort(key=lambda h: -h.score)  # stable: ties keep the index's order
    return scored
