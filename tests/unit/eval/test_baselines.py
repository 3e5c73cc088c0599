"""The training-free baselines on small known catalogues: own-leaf exclusion, BM25, two-hop."""

from __future__ import annotations

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.eval.baselines import (
    EXCLUDED,
    bm25_scores,
    excluding_own_leaf,
    tfidf_scores,
    two_hop_scores,
    two_hop_tfidf_scores,
)

PRODUCTS = [
    Product("p0", "acme phone x1", category_path=("R", "Phones")),
    Product("p1", "acme phone x1 black", category_path=("R", "Phones")),
    Product("c0", "leather case", category_path=("R", "Cases")),
    Product("c1", "acme phone case", category_path=("R", "Cases")),
    Product("g0", "fast charger", category_path=("R", "Chargers")),
    Product("m0", "coffee mug", category_path=("R", "Mugs")),
]


def test_own_leaf_exclusion_pushes_the_query_leaf_to_the_bottom() -> None:
    plain = tfidf_scores(PRODUCTS)(np.array([0]))[0]
    assert np.argsort(-plain)[1] == 1  # the other phone is the nearest title
    excluded = excluding_own_leaf(tfidf_scores(PRODUCTS), [p.leaf_category for p in PRODUCTS])
    row = excluded(np.array([0]))[0]
    assert row[0] == EXCLUDED and row[1] == EXCLUDED
    assert np.argmax(row) == 3  # "acme phone case" is the best lexical match outside Phones


def test_bm25_ranks_the_word_overlap_first() -> None:
    row = bm25_scores(PRODUCTS)(np.array([2]))[0]  # "leather case"
    assert np.argsort(-row)[1] == 3 and row[5] == 0.0


def test_two_hop_scores_the_partners_of_the_query_neighbours() -> None:
    # p1 (a neighbour of p0 by title) was bought with the charger; p0 itself has no pairs
    pairs = np.array([[1, 4], [4, 1]])
    row = two_hop_scores(PRODUCTS, pairs)(np.array([0]))[0]
    assert np.argmax(row) == 4 and row[4] > 0
    assert row[[2, 3, 5]].max() == 0.0
    # a query is never its own neighbour: p1's own pair does not leak into its list (p0, its only
    # similar product, has no pairs)
    own = two_hop_scores(PRODUCTS, pairs)(np.array([1]))[0]
    assert not own.any()
    fused = two_hop_tfidf_scores(PRODUCTS, pairs)(np.array([0]))[0]
    assert fused[4] >= 1.0 and fused[3] > 0  # normalised two-hop + direct TF-IDF
