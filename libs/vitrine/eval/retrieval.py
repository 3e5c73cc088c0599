"""Retrieval metrics and embedding geometry. Every evaluator returns `dict[str, float]`.

- `ndcg@10`: DCG with linear gains (the qrels grade) and log2 discounts, divided by the ideal DCG.
- `mrr@10`: reciprocal rank of the first relevant document in the top 10 (0 when none is there).
- `recall@100`: share of a query's relevant documents that appear in its top 100.
  The three are averaged over queries with at least one relevant document.
- `alignment` (Wang & Isola 2020, alpha = 2): mean squared distance between the embeddings of the
  positive pairs, here (query, relevant document); lower is better.
- `uniformity` (t = 2): log of the mean of exp(-2 * squared distance) over all distinct pairs of
  corpus embeddings, computed exactly; lower (more negative) means more evenly spread.

Embeddings are expected L2-normalised, so cosine similarity is the dot product and the squared
distance is 2 - 2 * cosine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from vitrine.data.retrieval import RetrievalSet

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TOP_K = 100
PRIMARY_METRIC = "ndcg@10"


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    positives = {doc for doc, g in relevant.items() if g > 0}
    if not positives:
        return 0.0
    return len(positives.intersection(ranked[:k])) / len(positives)


def ranking_metrics(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """Mean ndcg@10, mrr@10 and recall@100 over the queries of `qrels` that have a relevant document."""
    qids = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not qids:
        raise ValueError("no query has a relevant document")
    per_query = [
        (
            ndcg_at_k(rankings.get(q, ()), qrels[q]),
            mrr_at_k(rankings.get(q, ()), qrels[q]),
            recall_at_k(rankings.get(q, ()), qrels[q]),
        )
        for q in qids
    ]
    ndcg, mrr, recall = (float(np.mean(col)) for col in zip(*per_query, strict=True))
    return {"ndcg@10": ndcg, "mrr@10": mrr, "recall@100": recall}


def alignment(x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared distance between paired rows of `x` and `y`."""
    if x.shape != y.shape or x.ndim != 2 or len(x) == 0:
        raise ValueError(f"alignment needs two non-empty 2-D arrays of one shape, got {x.shape}, {y.shape}")
    return float(np.mean(np.sum((x.astype(np.float64) - y) ** 2, axis=1)))


def uniformity(x: np.ndarray, t: float = 2.0, chunk: int = 1024) -> float:
    """log mean exp(-t * squared distance) over all pairs i < j of the rows of `x`."""
    n = len(x)
    if n < 2:
        raise ValueError("uniformity needs at least two embeddings")
    x = x.astype(np.float64)
    sq = np.sum(x * x, axis=1)
    total = 0.0
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        d2 = np.maximum(sq[start : start + chunk, None] + sq[None, :] - 2.0 * block @ x.T, 0.0)
        rows = np.arange(start, start + len(block))
        # Keep only j > i so each unordered pair counts once and i == j never does.
        mask = np.arange(n)[None, :] > rows[:, None]
        total += float(np.exp(-t * d2)[mask].sum())
    return math.log(total / (n * (n - 1) / 2))


def rank(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    k: int = TOP_K,
    exclude: Sequence[Sequence[int]] | None = None,
    chunk: int = 256,
) -> np.ndarray:
    """Indices of the top-`k` documents per query by dot product, best first (ties: lower index)."""
    k = min(k, doc_emb.shape[0])
    out = np.empty((len(query_emb), k), dtype=np.int64)
    for start in range(0, len(query_emb), chunk):
        scores = query_emb[start : start + chunk] @ doc_emb.T
        if exclude is not None:
            for row, banned in enumerate(exclude[start : start + chunk]):
                scores[row, list(banned)] = -np.inf
        # Stable sort on -score keeps document order among ties, so results are reproducible.
        out[start : start + chunk] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return out


def evaluate_retrieval(rset: RetrievalSet, query_emb: np.ndarray, doc_emb: np.ndarray) -> dict[str, float]:
    """All five metrics for `rset`, given embeddings of its evaluated queries and its corpus (in order)."""
    qids = rset.evaluated_query_ids()
    doc_ids = list(rset.corpus)
    if query_emb.shape[0] != len(qids) or doc_emb.shape[0] != len(doc_ids):
        raise ValueError(
            f"expected {len(qids)} query and {len(doc_ids)} document embeddings, "
            f"got {query_emb.shape[0]} and {doc_emb.shape[0]}"
        )
    position = {doc: i for i, doc in enumerate(doc_ids)}
    exclude = [[position[d] for d in rset.ignore.get(q, ())] for q in qids]
    top = rank(query_emb, doc_emb, exclude=exclude)
    rankings = {q: [doc_ids[i] for i in row] for q, row in zip(qids, top, strict=True)}
    metrics = ranking_metrics(rankings, {q: rset.qrels[q] for q in qids})
    pairs = [(qi, position[d]) for qi, q in enumerate(qids) for d, g in rset.qrels[q].items() if g > 0]
    q_idx, d_idx = (np.array(col) for col in zip(*pairs, strict=True))
    metrics["alignment"] = alignment(query_emb[q_idx], doc_emb[d_idx])
    metrics["uniformity"] = uniformity(doc_emb)
    return metrics


def evaluate_encoder(
    model: SentenceTransformer, rset: RetrievalSet, batch_size: int = 32, show_progress: bool = False
) -> dict[str, float]:
    """Embed `rset` with `model` (query prefix for queries; document prefix for documents unless the
    task is symmetric) and return `evaluate_retrieval`'s metrics."""
    from vitrine.text.encoders import encode

    qids = rset.evaluated_query_ids()
    queries = encode(model, [rset.queries[q] for q in qids], "query", batch_size, show_progress)
    doc_role = "query" if rset.symmetric else "document"
    docs = encode(model, list(rset.corpus.values()), doc_role, batch_size, show_progress)
    return evaluate_retrieval(rset, queries, docs)
