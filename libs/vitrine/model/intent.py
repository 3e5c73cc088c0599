"""The intent tower: free text → the item space of a trained model (torch side; no I/O here).

    intent text ─▶ sentence encoder (frozen; MiniLM, e5-small or an NLI-tuned one) ─▶ text_vec
    text_vec ─▶ Linear ─▶ GELU ─▶ Dropout ─▶ Linear ─▶ L2-normalise ─▶ vector  (the item space)

The item tower and its vectors (what the index holds) are fixed: training moves only the projection.
Because the item vectors are fixed they are computed once, and every step can afford the whole
catalogue as negatives; the loss is the towers' sampled softmax (`vitrine.model.losses`) with the
batch's positives plus every catalogue item as candidates, logQ-corrected, and an intent's other
bundle items masked instead of counted as negatives.

Two sources of (text → item space) supervision:

- intents: (intent, item of a bundle with that intent), the task itself;
- the catalogue (`distill_weight`): each product's own title, whose sentence vector should land on
  the product's item vector (a cosine regression). This is free in any shop, covers the whole
  catalogue rather than the few thousand bundle items, and teaches the projection the geography
  of the item space in sentence-encoder terms.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitrine.model.losses import sampled_softmax_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntentConfig:
    """The intent tower's architecture and training; defaults chosen on validation (docs/EVALUATION.md)."""

    text_encoder: str = "minilm"  # minilm | e5-small | a sentence-transformers directory
    hidden_dim: int = 512
    dropout: float = 0.1
    temperature: float = 0.05
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 128
    epochs: int = 60
    patience: int = 10  # epochs without a better validation recall@10 before stopping
    distill_weight: float = 1.0  # catalogue titles → their own item vectors (0 = intents only)
    logq_correction: bool = True
    seed: int = 13
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default

    def __post_init__(self) -> None:
        if not self.text_encoder:
            raise ValueError("text_encoder must name a sentence encoder")
        if self.hidden_dim < 0 or self.batch_size < 2 or self.epochs < 0 or self.patience < 1:
            raise ValueError("hidden_dim must be >= 0, batch_size >= 2, epochs >= 0, patience >= 1")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError("temperature and learning_rate must be positive")
        if not 0 <= self.dropout < 1 or self.distill_weight < 0 or self.weight_decay < 0:
            raise ValueError("dropout must be in [0, 1), distill_weight and weight_decay >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown IntentConfig fields {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**data)


class IntentTower(nn.Module):
    """text_vec [B, text_dim] → L2-normalised [B, dim] in the item space."""

    def __init__(self, text_dim: int, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.text_dim, self.dim = text_dim, dim
        if hidden_dim:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(text_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, dim)
            )
        else:
            self.net = nn.Linear(text_dim, dim)

    def forward(self, text_vec: Tensor) -> Tensor:
        return F.normalize(self.net(text_vec), dim=-1)


@dataclass(frozen=True, slots=True)
class IntentExamples:
    """Training or validation intents as arrays: sentence vectors and their relevant items."""

    text_vec: np.ndarray  # float32 [Q, text_dim]
    items: tuple[tuple[int, ...], ...]  # per query, catalogue indices of its relevant items

    def __post_init__(self) -> None:
        if len(self.text_vec) != len(self.items):
            raise ValueError(f"{len(self.text_vec)} intent vectors but {len(self.items)} item lists")
        if any(not row for row in self.items):
            raise ValueError("every intent needs at least one relevant item")

    def pairs(self) -> np.ndarray:
        """int64 [P, 2]: (query row, item index), one per relevant item."""
        rows = [(q, i) for q, items in enumerate(self.items) for i in items]
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def known(self, n_items: int) -> Tensor:
        """bool [Q, n_items]: each query's relevant items."""
        out = torch.zeros(len(self.items), n_items, dtype=torch.bool)
        for q, items in enumerate(self.items):
            out[q, list(items)] = True
        return out


@torch.no_grad()
def recall_at(tower: IntentTower, examples: IntentExamples, item_vectors: Tensor, k: int = 10) -> float:
    """Mean share of each query's relevant items among its exact top-k (the tower alone, no serving)."""
    was_training = tower.training
    tower.eval()
    scores = tower(torch.from_numpy(examples.text_vec)) @ item_vectors.T
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices.numpy()
    tower.train(was_training)
    hits = [
        len(set(row.tolist()) & set(items)) / len(items)
        for row, items in zip(top, examples.items, strict=True)
    ]
    return float(np.mean(hits)) if hits else 0.0


@dataclass(slots=True)
class IntentTrainResult:
    best_epoch: int
    best_val_recall: float
    history: list[dict[str, float]]
    stopped_early: bool
    seconds: float


def train_intent_tower(
    tower: IntentTower,
    train: IntentExamples,
    val: IntentExamples,
    item_vectors: np.ndarray,
    config: IntentConfig,
    catalogue_text_vec: np.ndarray | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> IntentTrainResult:
    """Train in place; the tower ends with the weights of its best validation epoch (recall@10)."""
    started = time.perf_counter()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    items = torch.from_numpy(np.ascontiguousarray(item_vectors, dtype=np.float32))
    n_items = items.shape[0]
    pairs = train.pairs()
    if len(pairs) < 2:
        raise ValueError(f"{len(pairs)} (intent, item) training pairs; need at least 2")
    known = train.known(n_items)
    text = torch.from_numpy(train.text_vec)
    all_ids = torch.arange(n_items)
    # logQ: each catalogue item is a candidate once, plus its expected in-batch count
    popularity = torch.from_numpy(np.bincount(pairs[:, 1], minlength=n_items).astype(np.float32))
    popularity /= popularity.sum()
    log_q = torch.log(config.batch_size * popularity + 1.0) if config.logq_correction else None
    distill = catalogue_text_vec is not None and config.distill_weight > 0
    if distill:
        assert catalogue_text_vec is not None
        if len(catalogue_text_vec) != n_items:
            raise ValueError(f"{len(catalogue_text_vec)} catalogue text vectors for {n_items} items")
        catalogue = torch.from_numpy(np.ascontiguousarray(catalogue_text_vec, dtype=np.float32))
    optimizer = torch.optim.AdamW(
        tower.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = max(1, len(pairs) // config.batch_size)
    distill_batch = max(1, n_items // steps)
    best_state = copy.deepcopy(tower.state_dict())
    result = IntentTrainResult(0, -1.0, [], False, 0.0)
    stale = 0
    for epoch in range(1, config.epochs + 1):
        tower.train()
        order = rng.permutation(len(pairs))
        distill_order = rng.permutation(n_items)
        total = 0.0
        for step in range(steps):
            rows = torch.from_numpy(pairs[order[step * config.batch_size : (step + 1) * config.batch_size]])
            q_rows, positive_ids = rows[:, 0], rows[:, 1]
            queries = tower(text[q_rows])
            loss = sampled_softmax_loss(
                queries,
                items[positive_ids],
                positive_ids,
                config.temperature,
                negatives=items,
                negative_ids=all_ids,
                log_q_positives=None if log_q is None else log_q[positive_ids],
                log_q_negatives=log_q,
                # the query's other bundle items are answers too, never negatives
                extra_mask=known[q_rows][:, torch.cat([positive_ids, all_ids])],
            )
            if distill:
                chunk = torch.from_numpy(distill_order[step * distill_batch : (step + 1) * distill_batch])
                if len(chunk):
                    predicted = tower(catalogue[chunk])
                    loss = loss + config.distill_weight * (1.0 - (predicted * items[chunk]).sum(-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        val_recall = recall_at(tower, val, items) if len(val.items) else 0.0
        record = {"epoch": epoch, "train_loss": total / steps, "val_recall@10": val_recall}
        result.history.append(record)
        log.info("intent epoch %d: loss %.4f, val recall@10 %.4f", epoch, record["train_loss"], val_recall)
        if on_epoch is not None:
            on_epoch(record)
        if val_recall > result.best_val_recall:
            result.best_val_recall, result.best_epoch, stale = val_recall, epoch, 0
            best_state = copy.deepcopy(tower.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                result.stopped_early = True
                break
    tower.load_state_dict(best_state)
    tower.eval()
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def examples_from(
    text_vec: np.ndarray, item_lists: Sequence[Sequence[str]], index: dict[str, int]
) -> IntentExamples:
    return IntentExamples(
        np.ascontiguousarray(text_vec, dtype=np.float32),
        tuple(tuple(index[i] for i in items) for items in item_lists),
    )
