"""Losses: sampled softmax with mixed negatives and logQ correction; target-category reconstruction.

Mixed negative sampling (Yang et al., WWW 2020): the candidates of each query are the batch's
positives (in-batch negatives, sampled ∝ item popularity in the pairs) plus `M` items sampled
uniformly from the catalogue (which in-batch sampling under-represents: the long tail and fresh
items). Both are samples from one mixed proposal; logQ correction (Yi et al., RecSys 2019)
subtracts the log of each candidate's expected count under it, `log(B·p_j + M/N)`, so popular items
are not over-penalised as negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mixed_log_q(batch_size: int, n_uniform: int, n_items: int, popularity: Tensor) -> Tensor:
    """log(expected count) of each item among one batch's candidates; `popularity` sums to 1."""
    return torch.log(batch_size * popularity + n_uniform / n_items)


def sampled_softmax_loss(
    queries: Tensor,
    positives: Tensor,
    positive_ids: Tensor,
    temperature: float,
    negatives: Tensor | None = None,
    negative_ids: Tensor | None = None,
    query_ids: Tensor | None = None,
    log_q_positives: Tensor | None = None,
    log_q_negatives: Tensor | None = None,
    extra_mask: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of each query's own positive among in-batch positives + uniform negatives.

    queries, positives: [B, d]; negatives: [M, d]; *_ids: item indices (int64) used to mask
    accidental hits: a candidate that *is* the row's positive (duplicate in the batch) or the
    query item itself (tied towers score it ~1) is removed, never counted as a negative.
    log_q_*: per-candidate log sampling counts for the correction (omit to disable it).
    extra_mask: bool [B, B + M], further candidates to remove per query (known false negatives:
    other partners of the same query; candidates a served query never competes with).
    """
    candidates = positives if negatives is None else torch.cat([positives, negatives], dim=0)
    candidate_ids = positive_ids if negative_ids is None else torch.cat([positive_ids, negative_ids])
    logits = queries @ candidates.T / temperature
    if log_q_positives is not None:
        log_q = log_q_positives if negatives is None else torch.cat([log_q_positives, log_q_negatives])
        logits = logits - log_q.unsqueeze(0)
    batch = queries.shape[0]
    labels = torch.arange(batch, device=queries.device)
    hit = candidate_ids.unsqueeze(0) == positive_ids.unsqueeze(1)
    if query_ids is not None:
        hit = hit | (candidate_ids.unsqueeze(0) == query_ids.unsqueeze(1))
    if extra_mask is not None:
        hit = hit | extra_mask
    own = torch.zeros_like(hit)
    own[labels, labels] = True
    logits = logits.masked_fill(hit & ~own, float("-inf"))
    return F.cross_entropy(logits, labels)


def category_reconstruction_loss(
    queries: Tensor, projection: torch.nn.Module, category_table: Tensor, target_index: Tensor
) -> Tensor:
    """Auxiliary loss: the query vector must tell which target category it asks for.

    category_table: [C, c] embeddings of the candidate target categories (rows of the shared table);
    target_index: [B] row of each query's target in `category_table`.
    """
    logits = projection(queries) @ category_table.T
    return F.cross_entropy(logits, target_index)
