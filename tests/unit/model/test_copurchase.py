"""The co-purchase graph read through a query's lexical neighbours (`vitrine.model.copurchase`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitrine.catalog.schema import Product
from vitrine.eval.baselines import two_hop_scores
from vitrine.model.copurchase import CoPurchaseGraph
from vitrine.model.lexical import ProductTfidf

PRODUCTS = [
    Product("p0", "acme phone x1"),
    Product("p1", "acme phone x1 black"),
    Product("p2", "zorbix phone"),
    Product("c0", "leather case"),
    Product("c1", "acme phone case"),
    Product("g0", "fast charger"),
    Product("m0", "coffee mug"),
    Product("m1", "coffee mug lid"),
]
PAIRS = [("p1", "c1"), ("p1", "g0"), ("p2", "c0"), ("p2", "g0"), ("m0", "m1"), ("p1", "c1")]


def _graph() -> tuple[CoPurchaseGraph, ProductTfidf]:
    lexical = ProductTfidf.fit(p.title for p in PRODUCTS)
    return CoPurchaseGraph.from_pairs(PAIRS, {p.product_id: p.title for p in PRODUCTS}, lexical), lexical


@pytest.mark.parametrize("neighbours", [1, 2, 50])
def test_scores_are_the_two_hop_baselines_max_normalised(neighbours: int) -> None:
    """Catches a served co-purchase term that drifts from the `two_hop` baseline it was validated as
    (the same TF-IDF neighbours, the same similarity-weighted partner votes, a repeated pair once)."""
    graph, lexical = _graph()
    index = {p.product_id: i for i, p in enumerate(PRODUCTS)}
    pairs = np.array([(index[a], index[b]) for a, b in PAIRS])
    baseline = two_hop_scores(PRODUCTS, pairs, neighbours)
    for q, product in enumerate(PRODUCTS):
        expected = baseline(np.array([q]))[0]
        got = graph.scores(lexical.vector(product.title), product.product_id, neighbours)
        if expected.max() <= 0:
            assert got == {}
            continue
        dense = np.array([got.get(p.product_id, 0.0) for p in PRODUCTS])
        np.testing.assert_allclose(dense, expected / expected.max(), atol=1e-6)


def test_the_query_is_never_its_own_neighbour_and_the_graph_round_trips(tmp_path: Path) -> None:
    graph, lexical = _graph()
    # p1's own partners (c1, g0) come only through its neighbours: p2 votes g0 and c0, p0 has none
    own = graph.scores(lexical.vector("acme phone x1 black"), "p1", 1)
    assert set(own) == {"c0", "g0"} and max(own.values()) == 1.0
    # an inline query (no id) that equals p1 has p1 as its nearest anchor
    assert set(graph.scores(lexical.vector("acme phone x1 black"), "", 1)) == {"c1", "g0"}
    assert graph.scores(lexical.vector("unrelated words"), "", 5) == {}
    loaded = CoPurchaseGraph.load(graph.save(tmp_path), lexical)
    assert len(loaded) == len(graph) == 3
    query = lexical.vector("acme phone")
    assert loaded.scores(query, "", 2) == graph.scores(query, "", 2)
