"""The training loop: batches of (query, positive) item indices, mixed negatives, early stopping.

Features of the whole catalogue are extracted once and held as tensors; a batch is a row selection.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from vitrine.catalog.features import Features
from vitrine.model.config import TrainConfig
from vitrine.model.ensemble import EnsembleTask
from vitrine.model.progress import DurationEstimate
from vitrine.model.tasks import Batch, FeatureBatch, SimilarityTask

log = logging.getLogger(__name__)


def feature_tensors(features: Features, text_vec: np.ndarray | None = None) -> FeatureBatch:
    out = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in features.to_feeds().items()}
    if text_vec is not None:
        out["text_vec"] = torch.from_numpy(np.ascontiguousarray(text_vec, dtype=np.float32))
    return out


class FeatureStore:
    """All products' feature tensors; `take(idx)` selects rows and trims text padding to the batch."""

    def __init__(self, tensors: FeatureBatch) -> None:
        self.tensors = tensors
        self.text_lengths = self._lengths(tensors["text_weights"])
        self.size = int(tensors["leaf_id"].shape[0])

    @staticmethod
    def _lengths(weights: Tensor) -> Tensor:
        """Per row, one past the last non-zero weight (rows keep their order; zeros may be inside)."""
        positions = torch.arange(1, weights.shape[1] + 1).unsqueeze(0)
        return ((weights != 0) * positions).max(dim=1).values

    def mask_rare_tokens(self, min_products: int) -> Tensor:
        """Zero the weight of text tokens found in fewer than `min_products` products.

        Returns the rare bucket ids: the caller zeroes their embedding rows after training, so
        serving (which still looks them up) gets exactly the zero contribution training saw.
        """
        if min_products <= 1 or "text_ids" not in self.tensors:
            return torch.zeros(0, dtype=torch.int64)
        ids, weights = self.tensors["text_ids"], self.tensors["text_weights"]
        present = ids[weights != 0]
        rows = torch.arange(ids.shape[0]).unsqueeze(1).expand_as(ids)[weights != 0]
        # count each bucket once per product
        pairs = torch.unique(torch.stack([rows, present]), dim=1)
        counts = torch.bincount(pairs[1], minlength=int(ids.max()) + 1)
        rare = (counts[ids] < min_products) & (weights != 0)
        self.tensors["text_weights"] = weights.masked_fill(rare, 0.0)
        self.text_lengths = self._lengths(self.tensors["text_weights"])
        return torch.unique(ids[rare])

    def take(self, index: Tensor) -> FeatureBatch:
        width = max(int(self.text_lengths[index].max()), 1) if index.numel() else 1
        out: FeatureBatch = {}
        for name, tensor in self.tensors.items():
            rows = tensor.index_select(0, index)
            out[name] = rows[:, :width] if name in ("text_ids", "text_weights") else rows
        return out


@torch.no_grad()
def encode_all(task: SimilarityTask | EnsembleTask, store: FeatureStore, batch_size: int = 1024) -> Tensor:
    was_training = task.training
    task.eval()
    parts = [
        task.item_vectors(store.take(torch.arange(i, min(i + batch_size, store.size))))
        for i in range(0, store.size, batch_size)
    ]
    task.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0, task.encoder.config.dim)


@torch.no_grad()
def pair_ranks(
    task: SimilarityTask | EnsembleTask,
    store: FeatureStore,
    pairs: np.ndarray,
    items: Tensor,
    oracle: bool = False,
) -> np.ndarray:
    """0-based rank of each pair's target among all items (query excluded), exact dot-product kNN.

    Complementary pairs are ranked as they are served (`vitrine.serving.complementary`): the "any
    category" query against every item outside the query's own leaf. `oracle=True` gives the
    conditional query the target's true leaf instead (it measures the towers alone, with the answer's
    category given: recorded in the model card, never used to choose anything).
    """
    was_training = task.training
    task.eval()
    ranks = []
    leaf = store.tensors["leaf_id"]
    complementary = task.complementary
    for start in range(0, len(pairs), 512):
        chunk = torch.from_numpy(pairs[start : start + 512])
        q_idx, t_idx = chunk[:, 0], chunk[:, 1]
        target_cat = leaf[t_idx] if oracle else None
        queries = task.query_vectors(store.take(q_idx), target_cat)
        scores = queries @ items.T
        if complementary and not oracle:
            scores = scores.masked_fill(leaf.unsqueeze(0) == leaf[q_idx].unsqueeze(1), float("-inf"))
        scores[torch.arange(len(q_idx)), q_idx] = float("-inf")
        target_scores = scores[torch.arange(len(q_idx)), t_idx]
        ranks.append((scores > target_scores.unsqueeze(1)).sum(dim=1))
    task.train(was_training)
    return torch.cat(ranks).numpy() if ranks else np.zeros(0, dtype=np.int64)


def validation_recalls(
    task: SimilarityTask | EnsembleTask, store: FeatureStore, pairs: np.ndarray, items: Tensor, k: int
) -> dict[str, float]:
    """Served validation recall@k and @10 (what epochs are chosen on) and, for a complementary
    model, the oracle recall@k (target leaf given: recorded, never used to choose)."""

    def recall(ranks: np.ndarray, cut: int) -> float:
        return float((ranks < cut).mean()) if len(ranks) else 0.0

    ranks = pair_ranks(task, store, pairs, items)
    out = {f"val_recall@{k}": recall(ranks, k), "val_recall@10": recall(ranks, 10)}
    if task.complementary:
        out[f"val_oracle_recall@{k}"] = recall(pair_ranks(task, store, pairs, items, oracle=True), k)
    return out


def known_pair_keys(pairs: np.ndarray, n_items: int) -> Tensor:
    """Sorted `query * n_items + partner` keys of the training pairs (for false-negative masking)."""
    return torch.unique(torch.from_numpy(pairs[:, 0] * n_items + pairs[:, 1]))


def false_negative_mask(
    store: FeatureStore, query_ids: Tensor, candidate_ids: Tensor, known: Tensor
) -> Tensor:
    """bool [B, C]: candidates that are another training partner of the query, or in its own leaf."""
    keys = query_ids.unsqueeze(1) * store.size + candidate_ids.unsqueeze(0)
    partner = torch.isin(keys, known)
    leaf = store.tensors["leaf_id"]
    same_leaf = leaf[candidate_ids].unsqueeze(0) == leaf[query_ids].unsqueeze(1)
    return partner | same_leaf


@dataclass(slots=True)
class TrainResult:
    best_epoch: int
    best_val_recall: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_record: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def _optimizers(task: SimilarityTask, config: TrainConfig) -> list[torch.optim.Optimizer]:
    sparse_params: list[Tensor] = []
    for module in task.modules():
        if isinstance(module, torch.nn.Embedding) and module.sparse:
            sparse_params.append(module.weight)
    sparse_ids = {id(p) for p in sparse_params}
    dense = [p for p in task.parameters() if id(p) not in sparse_ids and p.requires_grad]
    opts: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(dense, lr=config.learning_rate, weight_decay=config.weight_decay)
    ]
    if sparse_params:
        opts.append(torch.optim.SparseAdam(sparse_params, lr=config.learning_rate))
    return opts


def make_batch(
    store: FeatureStore,
    pairs: Tensor,
    negative_pool: Tensor,
    n_uniform: int,
    generator: torch.Generator,
    candidate_categories: Tensor | None,
    known_pairs: Tensor | None = None,
) -> Batch:
    """The pairs' queries and positives, plus `n_uniform` items drawn uniformly from `negative_pool`."""
    q_idx, p_idx = pairs[:, 0].contiguous(), pairs[:, 1].contiguous()
    n_idx = None
    if n_uniform > 0:
        n_idx = negative_pool[torch.randint(0, len(negative_pool), (n_uniform,), generator=generator)]
    batch = Batch(
        query=store.take(q_idx),
        positive=store.take(p_idx),
        negative=None if n_idx is None else store.take(n_idx),
        query_ids=q_idx,
        positive_ids=p_idx,
        negative_ids=n_idx,
    )
    if candidate_categories is not None:
        target = store.tensors["leaf_id"][p_idx]
        batch.target_category = target
        batch.target_index = torch.searchsorted(candidate_categories, target)
    if known_pairs is not None:
        candidates = p_idx if n_idx is None else torch.cat([p_idx, n_idx])
        batch.candidate_mask = false_negative_mask(store, q_idx, candidates, known_pairs)
    return batch


def train_task(
    task: SimilarityTask,
    store: FeatureStore,
    train_pairs: np.ndarray,
    val_pairs: np.ndarray,
    config: TrainConfig,
    negative_pool: np.ndarray | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train in place; the task ends with the weights of its best validation epoch.

    `negative_pool`: item indices uniform negatives are drawn from (default: every item). Pass the
    training products only: a held-out product that shows up only as a negative teaches the model
    that its tokens are bad, which no new product in production would have been through.
    """
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizers = _optimizers(task, config)
    candidate_categories = getattr(task, "candidate_categories", None)
    complementary = task.complementary
    known = known_pair_keys(train_pairs, store.size) if complementary and config.mask_known_partners else None
    result = TrainResult(best_epoch=0, best_val_recall=-1.0)
    best_state = copy.deepcopy(task.state_dict())
    stale = 0
    n_batches = len(train_pairs) // config.batch_size  # drop the ragged last batch
    if config.max_steps_per_epoch > 0:
        n_batches = min(n_batches, config.max_steps_per_epoch)
    if n_batches == 0 and config.epochs > 0:
        raise ValueError(f"{len(train_pairs)} training pairs do not fill one batch of {config.batch_size}")
    all_pairs = torch.from_numpy(train_pairs)
    pool = torch.arange(store.size) if negative_pool is None else torch.from_numpy(negative_pool)
    if len(pool) == 0:
        raise ValueError("the negative pool is empty")
    estimate = DurationEstimate(n_batches, config.epochs, config.patience)
    for epoch in range(1, config.epochs + 1):
        task.train()
        order = torch.from_numpy(rng.permutation(len(train_pairs)))
        total = 0.0
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        for step in bar:
            rows = order[step * config.batch_size : (step + 1) * config.batch_size]
            batch = make_batch(
                store, all_pairs[rows], pool, config.uniform_negatives, generator, candidate_categories, known
            )
            loss = task(batch)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            total += float(loss.detach())
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            estimate.step_done(epoch, step)
        record = {
            "epoch": epoch,
            "train_loss": total / max(n_batches, 1),
            **validation_recalls(task, store, val_pairs, encode_all(task, store), config.eval_k),
        }
        val_recall = record[f"val_recall@{config.eval_k}"]
        result.history.append(record)
        estimate.epoch_done(epoch)
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
        if on_epoch is not None:
            on_epoch(record)
        if val_recall > result.best_val_recall:
            result.best_val_recall, result.best_epoch, stale = val_recall, epoch, 0
            result.best_record = record
            best_state = copy.deepcopy(task.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                result.stopped_early = True
                break
    task.load_state_dict(best_state)
    task.eval()
    return result
