"""Neighbours' complements for hybrid complementary scoring: the training co-purchase graph, stored
with the model (`copurchase.json`), read through the query's lexical nearest neighbours.

What goes with a product is often what was bought with products *like* it. The graph keeps every
training product that has co-purchase partners (an "anchor": its id, its lexical text and its
partners' ids). For a request, the query's `neighbours` most similar anchors by TF-IDF cosine
(`ProductTfidf`, the lexical table of the model) each vote for their partners with their
similarity; the votes are divided by the largest, so the term lies in [0, 1] whatever the catalogue.
It is the `two_hop` baseline's ranker (`vitrine.eval.baselines`), used as one term of the served
score, not as a list of its own. The query itself is never its own neighbour.

Plain Python and numpy (serving has no scipy): the anchors' TF-IDF vectors are held as one posting
array per term, so a query costs one numpy operation per query term.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitrine.model.lexical import ProductTfidf, Vector

COPURCHASE_FILE = "copurchase.json"


@dataclass(frozen=True, slots=True)
class Anchor:
    product_id: str
    text: str  # lexical text (`lexical.lexical_text`), as the index payload gives it for the product
    partners: tuple[str, ...]


class CoPurchaseGraph:
    def __init__(self, anchors: Sequence[Anchor], lexical: ProductTfidf) -> None:
        self.anchors = tuple(anchors)
        self._row = {a.product_id: i for i, a in enumerate(self.anchors)}
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for row, anchor in enumerate(self.anchors):
            for term, weight in lexical.vector(anchor.text).items():
                rows, weights = postings.setdefault(term, ([], []))
                rows.append(row)
                weights.append(weight)
        self._postings = {
            t: (np.asarray(r, dtype=np.int64), np.asarray(w, dtype=np.float64))
            for t, (r, w) in postings.items()
        }

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[str, str]], texts: dict[str, str], lexical: ProductTfidf
    ) -> CoPurchaseGraph:
        """The anchors of directed (query, partner) training pairs; `texts`: lexical text per product."""
        partners: dict[str, dict[str, None]] = {}
        for query, partner in pairs:
            partners.setdefault(query, {})[partner] = None  # a repeated pair counts once
        anchors = [Anchor(q, texts[q], tuple(p)) for q, p in sorted(partners.items())]
        return cls(anchors, lexical)

    def __len__(self) -> int:
        return len(self.anchors)

    def scores(self, query: Vector, query_id: str, neighbours: int) -> dict[str, float]:
        """Partner id -> summed similarity of the query's `neighbours` nearest anchors it was bought
        with, divided by the largest sum (empty when no anchor shares a term with the query)."""
        if not self.anchors or neighbours < 1:
            return {}
        sims = np.zeros(len(self.anchors), dtype=np.float64)
        for term, weight in query.items():
            posting = self._postings.get(term)
            if posting is not None:
                sims[posting[0]] += weight * posting[1]
        own = self._row.get(query_id) if query_id else None
        if own is not None:
            sims[own] = 0.0
        k = min(neighbours, len(sims))
        nearest = np.argpartition(-sims, k - 1)[:k]
        votes: dict[str, float] = {}
        for row in nearest:
            sim = float(sims[row])
            if sim <= 0.0:
                continue
            for partner in self.anchors[row].partners:
                votes[partner] = votes.get(partner, 0.0) + sim
        top = max(votes.values(), default=0.0)
        return {p: v / top for p, v in votes.items()} if top > 0 else {}

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / COPURCHASE_FILE
        data = {"anchors": [[a.product_id, a.text, list(a.partners)] for a in self.anchors]}
        path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path, lexical: ProductTfidf) -> CoPurchaseGraph:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls([Anchor(pid, text, tuple(partners)) for pid, text, partners in data["anchors"]], lexical)
