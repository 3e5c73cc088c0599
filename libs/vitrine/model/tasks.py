"""Training tasks: towers + loss. The encoder encodes; a task knows what a batch is and how to score it.

- `SimilarityTask`: tied towers (query tower = item tower = the Product Encoder).
- `ComplementaryTask`: item tower = the Product Encoder; query tower = `ComplementaryQueryTower`
  (same encoder + target category + seller). Each pair trains the query twice: with target "any"
  (id 0: "what goes with this product", scored against items of every category, so the tower itself
  learns *which* categories fit) and with the positive's true leaf (the conditional query a caller
  gets by naming target categories), the second weighted by `conditional_weight`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vitrine.model.config import TrainConfig
from vitrine.model.encoder import ComplementaryQueryTower, ProductEncoder
from vitrine.model.losses import category_reconstruction_loss, mixed_log_q, sampled_softmax_loss

FeatureBatch = dict[str, Tensor]


@dataclass(slots=True)
class Batch:
    query: FeatureBatch
    positive: FeatureBatch
    negative: FeatureBatch | None
    query_ids: Tensor  # item indices, for accidental-hit masking and logQ
    positive_ids: Tensor
    negative_ids: Tensor | None
    target_category: Tensor | None = None  # complementary: leaf-name id of each positive
    target_index: Tensor | None = None  # complementary: row of that leaf in `candidate_categories`
    # complementary: per query, which candidates are known partners (masked) or in its own leaf
    candidate_mask: Tensor | None = None


class SimilarityTask(nn.Module):
    complementary = False  # whether it has the complementary query tower (ensembles ask the same)

    def __init__(
        self, encoder: ProductEncoder, config: TrainConfig, popularity: Tensor, pool_size: int | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        # popularity: each item's share of the training positives (in-batch sampling probability);
        # pool_size: how many items uniform negatives are drawn from
        self.register_buffer("popularity", popularity, persistent=False)
        self.pool_size = pool_size or int(popularity.shape[0])

    def item_vectors(self, features: FeatureBatch) -> Tensor:
        return self.encoder(features)

    def query_vectors(self, features: FeatureBatch, target_category: Tensor | None = None) -> Tensor:
        return self.encoder(features)

    def _log_q(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        if not self.config.logq_correction:
            return None, None
        n_neg = 0 if batch.negative_ids is None else int(batch.negative_ids.shape[0])
        # x 1.0 (the full correction) is exact: the default trains bit for bit as before the weight
        log_q = self.config.logq_weight * mixed_log_q(
            int(batch.positive_ids.shape[0]), n_neg, self.pool_size, self.popularity
        )
        return log_q[batch.positive_ids], None if batch.negative_ids is None else log_q[batch.negative_ids]

    def retrieval_loss(
        self, queries: Tensor, batch: Batch, items: tuple[Tensor, Tensor | None] | None = None
    ) -> Tensor:
        positives, negatives = items if items is not None else self.candidate_vectors(batch)
        log_q_pos, log_q_neg = self._log_q(batch)
        return sampled_softmax_loss(
            queries,
            positives,
            batch.positive_ids,
            self.config.temperature,
            negatives=negatives,
            negative_ids=batch.negative_ids,
            query_ids=batch.query_ids,
            log_q_positives=log_q_pos,
            log_q_negatives=log_q_neg,
            extra_mask=batch.candidate_mask,
        )

    def candidate_vectors(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        positives = self.item_vectors(batch.positive)
        negatives = None if batch.negative is None else self.item_vectors(batch.negative)
        return positives, negatives

    def forward(self, batch: Batch) -> Tensor:
        return self.retrieval_loss(self.query_vectors(batch.query), batch)


class ComplementaryTask(SimilarityTask):
    complementary = True

    def __init__(
        self,
        encoder: ProductEncoder,
        config: TrainConfig,
        popularity: Tensor,
        candidate_categories: Tensor,
        pool_size: int | None = None,
    ) -> None:
        super().__init__(encoder, config, popularity, pool_size)
        self.query_tower = ComplementaryQueryTower(encoder)
        self.reconstruct = nn.Linear(encoder.config.dim, encoder.config.category_dim)
        # leaf-name ids of every target category seen in training (rows of the reconstruction softmax)
        self.register_buffer("candidate_categories", candidate_categories, persistent=False)

    def query_vectors(self, features: FeatureBatch, target_category: Tensor | None = None) -> Tensor:
        """Query vectors for `target_category` (leaf-name ids); None or id 0 = any category."""
        if target_category is None:
            target_category = torch.zeros_like(features["leaf_id"])
        return self.query_tower(features, target_category)

    def forward(self, batch: Batch) -> Tensor:
        if batch.target_category is None or batch.target_index is None:
            raise ValueError("a complementary batch needs target_category and target_index")
        items = self.candidate_vectors(batch)
        hidden = self.encoder.hidden(batch.query)
        any_target = torch.zeros_like(batch.target_category)
        loss = self.retrieval_loss(
            self.query_tower.from_hidden(hidden, batch.query, any_target), batch, items
        )
        if self.config.conditional_weight > 0 or self.config.aux_weight > 0:
            queries = self.query_tower.from_hidden(hidden, batch.query, batch.target_category)
            if self.config.conditional_weight > 0:
                loss = loss + self.config.conditional_weight * self.retrieval_loss(queries, batch, items)
            if self.config.aux_weight > 0:
                table = self.encoder.category(self.candidate_categories)
                aux = category_reconstruction_loss(queries, self.reconstruct, table, batch.target_index)
                loss = loss + self.config.aux_weight * aux
        return loss


def build_task(
    encoder: ProductEncoder,
    config: TrainConfig,
    popularity: Tensor,
    candidate_categories: Tensor | None = None,
    pool_size: int | None = None,
) -> SimilarityTask:
    if config.task == "similar":
        return SimilarityTask(encoder, config, popularity, pool_size)
    if candidate_categories is None:
        candidate_categories = torch.zeros(1, dtype=torch.int64)
    return ComplementaryTask(encoder, config, popularity, candidate_categories, pool_size)
