"""Complementary serving helpers: hybrid re-scoring of tower candidates, the round-robin display."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitrine.catalog.schema import Product
from vitrine.index.port import ItemPayload, ScoredItem
from vitrine.model.config import RetrievalConfig
from vitrine.model.lexical import TitleTfidf
from vitrine.serving.complementary import Anchored, _by_category_round_robin, _hybrid_scorer, _recommendation


@dataclass
class Towers:
    retrieval: RetrievalConfig
    lexical: TitleTfidf | None
    temperature: float = 0.1


def hit(pid: str, score: float, title: str, leaf: str = "Cases") -> ScoredItem:
    return ScoredItem(pid, score, ItemPayload(title=title, category_path=("R", leaf)))


TITLES = ["acme phone x1", "acme phone case", "leather wallet", "usb charger", "acme charger"]


def test_lexical_weight_reorders_candidates_by_logit_plus_title_cosine() -> None:
    lexical = TitleTfidf.fit(TITLES)
    product = Product("q", "acme phone x1", category_path=("R", "Phones"))
    hits = [hit("wallet", 0.50, "leather wallet"), hit("case", 0.45, "acme phone case")]
    rescore = _hybrid_scorer(Towers(RetrievalConfig(lexical_weight=10.0), lexical), product)  # type: ignore[arg-type]
    assert rescore is not None
    out = rescore(hits)
    # logits 5.0 vs 4.5: the shared words of "acme phone case" outweigh half a logit
    assert [h.product_id for h in out] == ["case", "wallet"]
    cosine = TitleTfidf.cosine(lexical.vector(product.title), lexical.vector("acme phone case"))
    # the score is that sum rescaled by T / (1 + w T) into [-1, 1] (the API's contract), same order
    assert math.isclose(out[0].score, (0.45 + 1.0 * cosine) / 2.0) and math.isclose(out[1].score, 0.50 / 2.0)
    assert all(-1.0 <= h.score <= 1.0 for h in out)
    # weight 0 or no idf table: the tower alone (no re-scoring at all)
    assert _hybrid_scorer(Towers(RetrievalConfig(lexical_weight=0.0), lexical), product) is None  # type: ignore[arg-type]
    assert _hybrid_scorer(Towers(RetrievalConfig(), None), product) is None  # type: ignore[arg-type]


def test_interleave_display_round_robins_categories_in_order_of_their_best_item() -> None:
    anchor = Anchored(Product("q", "phone"), "q", "", "q")
    ranked = [
        _recommendation(hit(pid, 1.0 - i / 10, pid, leaf), anchor, leaf)
        for i, (pid, leaf) in enumerate(
            [("c1", "Cases"), ("c2", "Cases"), ("g1", "Chargers"), ("c3", "Cases")]
        )
    ]
    assert [r.product_id for r in _by_category_round_robin(ranked)] == ["c1", "g1", "c2", "c3"]
