"""Baseline rankers for `vitrine eval recommend`: what a shop could use instead of a trained model.

- `random`, `popularity` (how often an item is a positive in the reference pairs);
- lexical: `tfidf` (cosine of word 1-2-gram TF-IDF of titles, scikit-learn) and `bm25` (Okapi BM25
  of titles, `bm25s`);
- zero-shot semantic: `minilm` (cosine of all-MiniLM-L6-v2 title vectors);
- co-purchase, training-free: `two_hop` ("neighbours' complements": the reference co-purchase
  partners of the query's TF-IDF nearest neighbours, weighted by their similarity) and
  `two_hop_tfidf` (it fused with direct TF-IDF).

Each returns a `ScoreFn` over the catalogue (see `vitrine.eval.ranking`). On complementary pairs the
evaluation wraps every ranker in `excluding_own_leaf`: no complementary pair lies inside one leaf
category, so ranking the query's own leaf would only handicap a baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.eval.ranking import ScoreFn

log = logging.getLogger(__name__)

TWO_HOP_NEIGHBOURS = 20  # TF-IDF neighbours whose partners are counted
TWO_HOP_TFIDF_WEIGHT = 1.0  # weight of direct TF-IDF next to the max-normalised two-hop score
EXCLUDED = -1e9  # score of an item a ranker must not return (finite: ties still break by jitter)


def random_scores(n_items: int, seed: int) -> ScoreFn:
    def score(queries: np.ndarray) -> np.ndarray:
        # seeded by the query ids, so the same query always gets the same random list
        rng = np.random.default_rng([seed, *map(int, queries[:1]), len(queries)])
        return rng.random((len(queries), n_items))

    return score


def popularity_scores(counts: np.ndarray) -> ScoreFn:
    """The same list for every query: items by how often they were a positive in the reference pairs."""
    counts = np.asarray(counts, dtype=np.float64)

    def score(queries: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(queries), len(counts))).copy()

    return score


def cosine_scores(vectors: np.ndarray) -> ScoreFn:
    """Dot products of (already L2-normalised) row vectors: exact k-NN."""

    def score(queries: np.ndarray) -> np.ndarray:
        return vectors[queries] @ vectors.T

    return score


def excluding_own_leaf(score_fn: ScoreFn, leaves: Sequence[str]) -> ScoreFn:
    """`score_fn` with every item of the query's own leaf category pushed to the bottom."""
    _, leaf_ids = np.unique(np.asarray(leaves, dtype=object).astype(str), return_inverse=True)

    def score(queries: np.ndarray) -> np.ndarray:
        out = np.array(score_fn(queries), dtype=np.float64)
        out[leaf_ids[queries][:, None] == leaf_ids[None, :]] = EXCLUDED
        return out

    return score


def tfidf_matrix(titles: Sequence[str]) -> Any:
    """Sparse [n, vocab] word 1-2-gram TF-IDF of `titles`, rows L2-normalised (scipy CSR)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, dtype=np.float32)
    return vectorizer.fit_transform([t if t.strip() else "_" for t in titles]).tocsr()


def tfidf_scores(products: Sequence[Product]) -> ScoreFn:
    matrix = tfidf_matrix([p.title for p in products])

    def score(queries: np.ndarray) -> np.ndarray:
        return np.asarray((matrix[queries] @ matrix.T).toarray(), dtype=np.float64)

    return score


def bm25_scores(products: Sequence[Product]) -> ScoreFn:
    """Okapi BM25 (`bm25s`, Lucene variant, English stop words) of each query's title against all titles."""
    import bm25s

    titles = [p.title for p in products]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(titles, stopwords="en", show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize(titles, stopwords="en", return_ids=False, show_progress=False)

    def score(queries: np.ndarray) -> np.ndarray:
        out = np.zeros((len(queries), len(products)), dtype=np.float64)
        for row, q in enumerate(queries):
            tokens = query_tokens[int(q)]
            if tokens:
                out[row] = retriever.get_scores(tokens)
        return out

    return score


def partner_matrix(pairs: np.ndarray, n_items: int) -> Any:
    """Sparse [n, n] adjacency of directed (query, partner) index pairs."""
    import scipy.sparse as sp

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    ones = np.ones(len(pairs), dtype=np.float32)
    adjacency = sp.csr_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(n_items, n_items))
    adjacency.data[:] = 1.0  # a repeated pair counts once
    return adjacency


def two_hop_scores(
    products: Sequence[Product], pairs: np.ndarray, neighbours: int = TWO_HOP_NEIGHBOURS
) -> ScoreFn:
    """Neighbours' complements: sum over the query's `neighbours` TF-IDF nearest products that have
    reference partners (the query itself excluded) of similarity x [item is a partner of it]."""
    matrix = tfidf_matrix([p.title for p in products])
    adjacency = partner_matrix(pairs, len(products))
    has_partners = np.asarray(adjacency.sum(axis=1)).ravel() > 0

    def score(queries: np.ndarray) -> np.ndarray:
        sim = np.asarray((matrix[queries] @ matrix.T).toarray(), dtype=np.float64)
        sim[:, ~has_partners] = 0.0
        sim[np.arange(len(queries)), queries] = 0.0
        k = min(neighbours, sim.shape[1])
        if k < sim.shape[1]:
            kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]
            sim[sim < kth] = 0.0
        return np.asarray(adjacency.T.dot(sim.T).T, dtype=np.float64)

    return score


def two_hop_tfidf_scores(
    products: Sequence[Product],
    pairs: np.ndarray,
    weight: float = TWO_HOP_TFIDF_WEIGHT,
    neighbours: int = TWO_HOP_NEIGHBOURS,
) -> ScoreFn:
    """two_hop, max-normalised per query, + `weight` x direct TF-IDF cosine (a complement that no
    neighbour was bought with can still be found by its words)."""
    hops = two_hop_scores(products, pairs, neighbours)
    direct = tfidf_scores(products)

    def score(queries: np.ndarray) -> np.ndarray:
        h = hops(queries)
        h /= np.maximum(h.max(axis=1, keepdims=True), 1e-12)
        return h + weight * direct(queries)

    return score


def sentence_vectors_cached(encoder: str, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """L2-normalised sentence vectors of `texts`, cached on disk by content hash (they take minutes on CPU)."""
    from vitrine.model.text_branch import cached_sentence_vectors

    return cached_sentence_vectors(encoder, texts, cache_dir)


def minilm_scores(products: Sequence[Product], cache_dir: Path | None) -> ScoreFn:
    return cosine_scores(sentence_vectors_cached("minilm", [p.title for p in products], cache_dir))
