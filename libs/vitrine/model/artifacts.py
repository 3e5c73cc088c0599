"""Saving and loading trained towers (torch side of a model directory; the card is in `card.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from vitrine.catalog.features import FeatureConfig
from vitrine.errors import DataError
from vitrine.model.card import CENTROIDS_FILE, WEIGHTS_FILE, ModelCard, read_card
from vitrine.model.config import EncoderConfig, TrainConfig
from vitrine.model.encoder import ProductEncoder
from vitrine.model.ensemble import EnsembleTask
from vitrine.model.tasks import SimilarityTask, build_task


def weights_bytes(task: SimilarityTask | EnsembleTask) -> bytes:
    buffer = io.BytesIO()
    torch.save(task.state_dict(), buffer)
    return buffer.getvalue()


def save_weights(task: SimilarityTask | EnsembleTask, model_dir: Path) -> bytes:
    data = weights_bytes(task)
    (Path(model_dir) / WEIGHTS_FILE).write_bytes(data)
    return data


def save_centroids(centroids: np.ndarray | None, model_dir: Path) -> None:
    if centroids is not None:
        np.save(Path(model_dir) / CENTROIDS_FILE, centroids.astype(np.float32))


def build_from_card(card: ModelCard) -> SimilarityTask | EnsembleTask:
    """A task with the card's architecture (one model or an ensemble) and fresh weights."""
    features = FeatureConfig.from_dict(card.features)
    config = EncoderConfig.from_dict(card.encoder)
    train = TrainConfig.from_dict(card.train)
    # popularity and the reconstruction categories are training-time buffers, not weights
    members = [
        build_task(ProductEncoder(features, config), train, popularity=torch.ones(1))
        for _ in range(config.members)
    ]
    return members[0] if len(members) == 1 else EnsembleTask(members)


def load_task(model_dir: str | Path) -> tuple[ModelCard, SimilarityTask | EnsembleTask]:
    """The card and the trained towers (eval mode) of a model directory."""
    card = read_card(model_dir)
    task = build_from_card(card)
    path = Path(model_dir) / card.files.get("weights", WEIGHTS_FILE)
    if not path.is_file():
        raise DataError(f"no weights at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    task.load_state_dict(state)
    task.eval()
    return card, task
