"""Baseline rankers for `vitrine eval recommend`: random, popularity, TF-IDF on titles, zero-shot MiniLM.

Each returns a `ScoreFn` over the catalogue (see `vitrine.eval.ranking`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.eval.ranking import ScoreFn

log = logging.getLogger(__name__)


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


def tfidf_vectors(titles: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, dtype=np.float32)
    matrix = vectorizer.fit_transform(list(titles))  # rows are L2-normalised
    return np.asarray(matrix.toarray(), dtype=np.float32)


def tfidf_scores(products: Sequence[Product]) -> ScoreFn:
    dense = tfidf_vectors([p.title for p in products])

    def score(queries: np.ndarray) -> np.ndarray:
        return dense[queries] @ dense.T

    return score


def _cache_path(cache_dir: Path | None, encoder: str, texts: Sequence[str]) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha256("\n".join([encoder, *texts]).encode("utf-8")).hexdigest()[:16]
    return cache_dir / f"{encoder.replace('/', '_')}-{digest}.npy"


def sentence_vectors_cached(encoder: str, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """L2-normalised sentence vectors of `texts`, cached on disk by content hash (they take minutes on CPU)."""
    path = _cache_path(cache_dir, encoder, texts)
    if path is not None and path.is_file():
        return np.load(path)
    from vitrine.model.text_branch import encode_texts, load_text_encoder

    log.info("encoding %d titles with %s", len(texts), encoder)
    vectors = encode_texts(load_text_encoder(encoder), texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def minilm_scores(products: Sequence[Product], cache_dir: Path | None) -> ScoreFn:
    return cosine_scores(sentence_vectors_cached("minilm", [p.title for p in products], cache_dir))
