"""An ensemble of independently trained towers, served as one model.

K members (same architecture and training pairs, different initialisation and batch order) are
trained one after another, each with its own early stopping on served validation recall. The
ensemble's vector of a product is the concatenation of the members' L2-normalised vectors divided by
sqrt(K): it has unit norm, and the dot product of two such vectors is the mean of the members'
cosines. So one index, one query and one exact or HNSW search serve the averaged score, with no
change to the index, the serving code or the score's [-1, 1] contract; the vector is K times longer.

Why: on small behaviour data the result of one training run varies a lot with its initialisation
(BundleRec electronic, served validation recall@10 of three seeds: 0.071, 0.071, 0.051), and the
average of four members is above every one of them (0.087; docs/EVALUATION.md, Choices).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from vitrine.model.encoder import ProductEncoder
from vitrine.model.tasks import FeatureBatch, SimilarityTask


def side_by_side(vectors: Sequence[Tensor]) -> Tensor:
    """Unit vectors of the members, concatenated / sqrt(K): dot products are the mean cosine."""
    return torch.cat(list(vectors), dim=-1) / math.sqrt(len(vectors))


class EnsembleEncoder(nn.Module):
    """The members' item towers side by side: [n, K * dim], unit norm."""

    def __init__(self, members: Sequence[ProductEncoder]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.features = members[0].features
        self.config = replace(members[0].config, dim=members[0].config.dim * len(members))

    def forward(self, inputs: FeatureBatch) -> Tensor:
        return side_by_side([m(inputs) for m in self.members])


class EnsembleQueryTower(nn.Module):
    """The members' complementary query towers side by side (same layout as EnsembleEncoder)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, inputs: FeatureBatch, target_category_id: Tensor) -> Tensor:
        return side_by_side([m(inputs, target_category_id) for m in self.members])


class EnsembleTask(nn.Module):
    """Trained member tasks behind the interface the pipeline, evaluation and export use.

    It is not trained itself (each member is, by `train_task`); `item_vectors` / `query_vectors`
    give the ensemble's vectors, `encoder` and `query_tower` what the ONNX export traces.
    """

    def __init__(self, members: Sequence[SimilarityTask]) -> None:
        super().__init__()
        if len({m.complementary for m in members}) != 1:
            raise ValueError("ensemble members must all be of one task")
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.complementary: bool = members[0].complementary
        self.encoder = EnsembleEncoder([m.encoder for m in members])
        if self.complementary:
            self.query_tower = EnsembleQueryTower([m.query_tower for m in members])

    def item_vectors(self, features: FeatureBatch) -> Tensor:
        return self.encoder(features)

    def query_vectors(self, features: FeatureBatch, target_category: Tensor | None = None) -> Tensor:
        return side_by_side([m.query_vectors(features, target_category) for m in self.members])
