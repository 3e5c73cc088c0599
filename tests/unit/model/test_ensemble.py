"""Ensembles of independently trained towers: the averaged score, training, loading, export, serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.data.datasets import load_dataset, parse_specs
from vitrine.model.artifacts import load_task
from vitrine.model.config import EncoderConfig, TrainConfig
from vitrine.model.encoder import ComplementaryQueryTower, ProductEncoder
from vitrine.model.ensemble import EnsembleEncoder, EnsembleQueryTower
from vitrine.model.export import PARITY_TOLERANCE, export_model
from vitrine.model.inference import load_inference_model
from vitrine.model.pipeline import TrainingSetup, run_training
from vitrine.model.train import feature_tensors

SMALL = FeatureConfig(text_buckets=1 << 12, category_buckets=1 << 10, brand_buckets=256, seller_buckets=64)
DATASET = "synthetic:300"


def _members(n: int) -> list[ProductEncoder]:
    encoders = []
    for seed in range(n):
        torch.manual_seed(seed)
        encoder = ProductEncoder(SMALL, EncoderConfig(dim=8))
        with torch.no_grad():  # zero-initialised tables would make every member the same function
            for module in encoder.modules():
                if isinstance(module, torch.nn.Embedding):
                    module.weight.normal_()
        encoders.append(encoder.eval())
    return encoders


def test_ensemble_dot_product_is_the_mean_of_the_members_cosines() -> None:
    """Catches a concatenation without the 1/sqrt(K) scale (scores outside [-1, 1]) or members
    weighted unequally: the index would then not rank by the averaged score."""
    products = load_dataset("synthetic:100").products[:6]
    inputs = feature_tensors(FeatureExtractor(SMALL).extract(products))
    members = _members(3)
    ensemble = EnsembleEncoder(members).eval()
    with torch.no_grad():
        vectors = ensemble(inputs)
        each = [m(inputs) for m in members]
    assert vectors.shape == (6, 24) and ensemble.config.dim == 24
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(6))
    mean_cosine = sum(e @ e[0] for e in each) / 3
    torch.testing.assert_close(vectors @ vectors[0], mean_cosine)
    assert not torch.allclose(each[0] @ each[0][1], each[1] @ each[1][1])  # the members differ


def test_ensemble_query_tower_averages_its_members_scores() -> None:
    products = load_dataset("synthetic:100").products[:4]
    inputs = feature_tensors(FeatureExtractor(SMALL).extract(products))
    members = _members(2)
    towers = [ComplementaryQueryTower(m).eval() for m in members]
    queries = EnsembleQueryTower(towers).eval()
    items = EnsembleEncoder(members).eval()
    target = torch.zeros(4, dtype=torch.int64)
    with torch.no_grad():
        scores = queries(inputs, target) @ items(inputs).T
        expected = sum(t(inputs, target) @ m(inputs).T for t, m in zip(towers, members, strict=True)) / 2
    torch.testing.assert_close(scores, expected)


@pytest.mark.slow
def test_a_trained_ensemble_loads_exports_and_serves_its_concatenated_vectors(tmp_path: Path) -> None:
    """Catches an ensemble that trains but does not survive the model directory: weights that load
    into another layout, an export of one member only, or a card whose dim the index would reject."""
    setup = TrainingSetup(
        specs=tuple(parse_specs(DATASET)),
        train=TrainConfig(
            task="complementary",
            epochs=2,
            max_steps_per_epoch=5,
            batch_size=64,
            uniform_negatives=32,
            kmeans_k=4,
        ),
        features=SMALL,
        encoder=EncoderConfig(dim=16, members=2),
        progress=False,
    )
    card = run_training(setup, tmp_path)
    assert card.dim == 32
    assert len(card.metrics["members"]) == 2
    first, second = (m["history"] for m in card.metrics["members"])
    assert first != second  # different initialisation and batch order
    assert "val_recall@10" in card.metrics["best"] and "val_oracle_recall@50" in card.metrics["best"]

    card, task = load_task(tmp_path)
    products = load_dataset(DATASET).products
    record = export_model(card, task, products, tmp_path)
    assert {p["tower"] for p in record["parity"]} == {"item_tower", "query_tower_complementary"}
    assert all(p["max_abs_diff"] < PARITY_TOLERANCE for p in record["parity"])
    card.export = record
    card.files.update(record["files"])
    card.save(tmp_path)

    served = load_inference_model(tmp_path)
    vectors = served.encode_items(products[:20])
    queries = served.encode_complementary_queries(products[:20], [""] * 20)
    assert served.dim == 32 and vectors.shape == (20, 32) and queries.shape == (20, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        torch_vectors = task.item_vectors(feature_tensors(FeatureExtractor(SMALL).extract(products[:20])))
    np.testing.assert_allclose(vectors, torch_vectors.numpy(), atol=PARITY_TOLERANCE)
