"""Training tasks: towers + loss. The encoder encodes; a task knows what a batch is and how to score it.

- `SimilarityTask`: tied towers (query tower = item tower = the Product Encoder).
- `ComplementaryTask`: item tower = the Product Encoder; query tower = `ComplementaryQueryTower`
  (same encoder + target category + seller), plus the target-category reconstruction loss.
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


class SimilarityTask(nn.Module):
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
        log_q = mixed_log_q(int(batch.positive_ids.shape[0]), n_neg, self.pool_size, self.popularity)
        return log_q[batch.positive_ids], None if batch.negative_ids is None else log_q[batch.negative_ids]

    def retrieval_loss(self, queries: Tensor, batch: Batch) -> Tensor:
        positives = self.item_vectors(batch.positive)
        negatives = None if batch.negative is None else self.item_vectors(batch.negative)
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
        )

    def forward(self, batch: Batch) -> Tensor:
        return self.retrieval_loss(self.query_vectors(batch.query), batch)


class ComplementaryTask(SimilarityTask):
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
        if target_category is None:
            raise ValueError("the complementary query tower needs a target category")
        return self.query_tower(features, target_category)

    def forward(self, batch: Batch) -> Tensor:
        if batch.target_category is None or batch.target_index is None:
            raise ValueError("a complementary batch needs target_category and target_index")
        queries = self.query_vectors(batch.query, batch.target_category)
        loss = self.retrieval_loss(queries, batch)
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
