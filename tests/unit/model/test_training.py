"""Encoder shapes, training determinism and learning, the model card round trip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.data.datasets import load_dataset, parse_specs
from vitrine.model.card import ModelCard, make_model_version, read_card
from vitrine.model.config import EncoderConfig, TrainConfig
from vitrine.model.encoder import ComplementaryQueryTower, ProductEncoder
from vitrine.model.pipeline import TrainingSetup, run_training
from vitrine.model.train import FeatureStore, feature_tensors

SMALL = FeatureConfig(text_buckets=1 << 12, category_buckets=1 << 10, brand_buckets=256, seller_buckets=64)


def test_encoder_outputs_unit_vectors_and_unseen_tokens_add_nothing() -> None:
    products = load_dataset("synthetic:100").products[:8]
    encoder = ProductEncoder(SMALL, EncoderConfig(dim=16)).eval()
    inputs = feature_tensors(FeatureExtractor(SMALL).extract(products))
    with torch.no_grad():
        vectors = encoder(inputs)
        assert vectors.shape == (8, 16)
        torch.testing.assert_close(vectors.norm(dim=1), torch.ones(8))
        # zero-initialised tables: a fresh encoder ignores which tokens a product has
        changed = dict(inputs, text_ids=torch.randint(1, 1 << 12, inputs["text_ids"].shape))
        torch.testing.assert_close(encoder(changed), vectors)


def test_complementary_query_depends_on_the_target_category() -> None:
    products = load_dataset("synthetic:100").products[:4]
    encoder = ProductEncoder(SMALL, EncoderConfig(dim=16)).eval()
    with torch.no_grad():
        encoder.category.weight.normal_()
        tower = ComplementaryQueryTower(encoder).eval()
        inputs = feature_tensors(FeatureExtractor(SMALL).extract(products))
        a = tower(inputs, torch.full((4,), 5))
        b = tower(inputs, torch.full((4,), 6))
    assert not torch.allclose(a, b)


def test_rare_tokens_are_masked_and_text_width_follows_the_last_kept_token() -> None:
    products = load_dataset("synthetic:200").products
    store = FeatureStore(feature_tensors(FeatureExtractor(SMALL).extract(products)))
    rare = store.mask_rare_tokens(2)
    assert rare.numel() > 0  # model numbers such as "C850" occur once
    assert not bool(torch.isin(store.tensors["text_ids"][store.tensors["text_weights"] != 0], rare).any())
    weights = store.tensors["text_weights"]
    assert int(store.text_lengths.max()) <= weights.shape[1]
    batch = store.take(torch.arange(10))
    assert batch["text_ids"].shape[1] == int(store.text_lengths[:10].max())


def train(out: Path, seed: int, epochs: int = 2) -> ModelCard:
    setup = TrainingSetup(
        specs=tuple(parse_specs("synthetic:600")),
        train=TrainConfig(
            epochs=epochs, batch_size=128, uniform_negatives=64, seed=seed, kmeans_k=8, patience=5
        ),
        features=SMALL,
        progress=False,
    )
    return run_training(setup, out)


@pytest.mark.slow
def test_training_is_deterministic_learns_and_writes_a_card(tmp_path: Path) -> None:
    first = train(tmp_path / "a", seed=5)
    second = train(tmp_path / "b", seed=5)
    assert (tmp_path / "a" / "weights.pt").read_bytes() == (tmp_path / "b" / "weights.pt").read_bytes()
    history = first.metrics["history"]
    assert [h["val_recall@50"] for h in history] == [h["val_recall@50"] for h in second.metrics["history"]]
    untrained = train(tmp_path / "c", seed=5, epochs=0)
    assert untrained.metrics.get("history") is None
    # synthetic sessions stay in one leaf category: a trained model retrieves far better than chance
    assert first.metrics["val_recall@50"] > 0.3
    card = read_card(tmp_path / "a")
    assert card.to_dict() == first.to_dict()
    assert card.split["pairs"]["train"] > 0 and card.split["seed"] == 13
    assert np.load(tmp_path / "a" / "centroids.npy").shape == (8, card.dim)


def test_model_version_format() -> None:
    version = make_model_version("similar", b"weights")
    assert re.fullmatch(r"similar-\d{14}-[0-9a-f]{8}", version)
    assert make_model_version("similar", b"other") != version


def test_untrained_flag_is_recorded(tmp_path: Path) -> None:
    setup = TrainingSetup(
        specs=tuple(parse_specs("synthetic:200")),
        train=TrainConfig(kmeans_k=4),
        features=SMALL,
        untrained=True,
        progress=False,
    )
    card = run_training(setup, tmp_path)
    assert card.untrained and read_card(tmp_path).untrained
    # random tables: products get different vectors, so k-means finds several clusters
    assert np.load(tmp_path / "centroids.npy").shape[0] > 1


def test_config_round_trips() -> None:
    assert EncoderConfig.from_dict(EncoderConfig(dim=32).to_dict()) == EncoderConfig(dim=32)
    assert TrainConfig.from_dict(TrainConfig(task="complementary").to_dict()).task == "complementary"
    with pytest.raises(ValueError, match="similar"):
        TrainConfig(task="inspire")
    with pytest.raises(ValueError, match="logq_weight"):
        TrainConfig(logq_weight=-0.5)
    with pytest.raises(ValueError, match="members"):
        EncoderConfig(members=0)


def test_partial_logq_weight_scales_the_correction() -> None:
    """`--logq-weight w` subtracts w x log Q: a weight that were ignored (or applied twice) fails."""
    from vitrine.model.tasks import Batch, build_task

    popularity = torch.tensor([0.5, 0.3, 0.2])
    ids = torch.tensor([0, 1, 2])
    batch = Batch(query={}, positive={}, negative=None, query_ids=ids, positive_ids=ids, negative_ids=None)
    full, _ = build_task(ProductEncoder(SMALL, EncoderConfig(dim=8)), TrainConfig(), popularity)._log_q(batch)
    half, _ = build_task(
        ProductEncoder(SMALL, EncoderConfig(dim=8)), TrainConfig(logq_weight=0.5), popularity
    )._log_q(batch)
    assert full is not None and half is not None
    torch.testing.assert_close(half, 0.5 * full)


def test_false_negative_mask_marks_other_partners_and_the_own_leaf() -> None:
    from vitrine.catalog.schema import Product
    from vitrine.model.train import false_negative_mask, known_pair_keys

    products = [
        Product("phone", "phone", category_path=("R", "Phones")),
        Product("case", "case", category_path=("R", "Cases")),
        Product("charger", "charger", category_path=("R", "Chargers")),
        Product("phone2", "phone two", category_path=("R", "Phones")),
    ]
    store = FeatureStore(feature_tensors(FeatureExtractor(SMALL).extract(products)))
    known = known_pair_keys(np.array([[0, 1], [0, 2]]), store.size)
    mask = false_negative_mask(store, torch.tensor([0]), torch.tensor([1, 2, 3]), known)
    # case and charger are both partners of the phone; phone2 is in the phone's own leaf
    assert mask.tolist() == [[True, True, True]]
    other = false_negative_mask(store, torch.tensor([1]), torch.tensor([0, 2, 3]), known)
    assert other.tolist() == [[False, False, False]]  # the case has no known partners, other leaves


def test_any_category_query_is_the_padding_target() -> None:
    products = load_dataset("synthetic:100").products[:4]
    encoder = ProductEncoder(SMALL, EncoderConfig(dim=16)).eval()
    from vitrine.model.tasks import ComplementaryTask

    task = ComplementaryTask(encoder, TrainConfig(task="complementary"), torch.ones(4) / 4, torch.tensor([1]))
    inputs = feature_tensors(FeatureExtractor(SMALL).extract(products))
    with torch.no_grad():
        encoder.category.weight.normal_()
        encoder.category.weight[0].zero_()
        implicit = task.query_vectors(inputs)
        explicit = task.query_tower(inputs, torch.zeros(4, dtype=torch.int64))
        named = task.query_vectors(inputs, torch.full((4,), 5))
    torch.testing.assert_close(implicit, explicit)
    assert not torch.allclose(implicit, named)
