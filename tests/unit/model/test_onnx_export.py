"""Export parity (onnxruntime vs torch on real products) and the serving contract on exported models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.data.datasets import load_dataset, parse_specs
from vitrine.model.artifacts import load_task
from vitrine.model.card import read_card
from vitrine.model.config import TrainConfig
from vitrine.model.export import PARITY_TOLERANCE, export_model
from vitrine.model.inference import load_inference_model
from vitrine.model.pipeline import TrainingSetup, run_training
from vitrine.model.train import feature_tensors

pytestmark = pytest.mark.slow
DATASET = "synthetic:300"
# small tables keep the ONNX files (and the test) small; the code path is the production one
FEATURES = FeatureConfig(text_buckets=1 << 12, category_buckets=1 << 10, brand_buckets=256, seller_buckets=64)


def train_and_export(out: Path, task: str) -> Path:
    setup = TrainingSetup(
        specs=tuple(parse_specs(DATASET)),
        train=TrainConfig(
            task=task, epochs=1, max_steps_per_epoch=5, batch_size=64, uniform_negatives=32, kmeans_k=8
        ),
        features=FEATURES,
        progress=False,
    )
    card = run_training(setup, out)
    card, trained = load_task(out)
    record = export_model(card, trained, load_dataset(DATASET).products, out)
    card.export = record
    card.files.update(record["files"])
    card.save(out)
    return out


@pytest.fixture(scope="module")
def similar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_and_export(tmp_path_factory.mktemp("similar"), "similar")


@pytest.fixture(scope="module")
def complementary_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_and_export(tmp_path_factory.mktemp("complementary"), "complementary")


def test_export_records_parity_below_tolerance(similar_dir: Path, complementary_dir: Path) -> None:
    for model_dir, towers in (
        (similar_dir, {"item_tower"}),
        (complementary_dir, {"item_tower", "query_tower_complementary"}),
    ):
        record = read_card(model_dir).export
        assert {p["tower"] for p in record["parity"]} == towers
        assert all(p["max_abs_diff"] < PARITY_TOLERANCE for p in record["parity"])
        assert (model_dir / "item_tower.onnx").is_file()


def test_serving_reproduces_torch_on_other_real_products(similar_dir: Path) -> None:
    # products the export's parity check did not use, through the serving path (features + ONNX)
    products = load_dataset(DATASET).products[-40:]
    card, trained = load_task(similar_dir)
    inputs = feature_tensors(FeatureExtractor(FeatureConfig.from_dict(card.features)).extract(products))
    with torch.no_grad():
        expected = trained.item_vectors(inputs).numpy()
    served = load_inference_model(similar_dir).encode_items(products)
    assert served.dtype == np.float32 and served.shape == (40, card.dim)
    assert float(np.abs(served - expected).max()) < PARITY_TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_serving_contract_similar(similar_dir: Path) -> None:
    model = load_inference_model(similar_dir)
    assert model.task == "similar" and not model.untrained and model.dim == 64
    assert model.model_version.startswith("similar-")
    assert model.encode_items([]).shape == (0, 64)
    products = load_dataset(DATASET).products[:5]
    vectors = model.encode_items(products)
    clusters = model.assign_clusters(vectors)
    assert model.centroids is not None and clusters.dtype == np.int32
    assert ((clusters >= 0) & (clusters < len(model.centroids))).all()
    with pytest.raises(ValueError, match="complementary"):
        model.encode_complementary_queries(products, ["Mugs"] * 5)


def test_serving_contract_complementary(complementary_dir: Path) -> None:
    model = load_inference_model(complementary_dir)
    assert model.task == "complementary" and model.complementary_map
    products = load_dataset(DATASET).products[:3]
    queries = model.encode_complementary_queries(products, ["Mugs", "Ties", "Mugs"])
    assert queries.shape == (3, model.dim)
    # the target category changes the query
    assert (
        float(np.abs(queries[0] - model.encode_complementary_queries(products[:1], ["Ties"])[0]).max()) > 1e-4
    )
    assert model.encode_complementary_queries([], []).shape == (0, model.dim)
    with pytest.raises(ValueError):
        model.encode_complementary_queries(products, ["Mugs"])


def test_serving_module_never_imports_torch(similar_dir: Path) -> None:
    code = (
        "import sys\n"
        "from vitrine.model.inference import load_inference_model\n"
        f"m = load_inference_model({str(similar_dir)!r})\n"
        "from vitrine.data.synthetic import generate, SyntheticConfig\n"
        "m.encode_items(generate(SyntheticConfig(n_products=60)).products)\n"
        "assert 'torch' not in sys.modules, 'serving imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_hashed_plus_sentence_towers_export_with_parity(tmp_path: Path) -> None:
    """The concatenated text branch (hashed bag ++ sentence adapter): both inputs reach the ONNX
    graphs and onnxruntime matches torch. Sentence vectors are random here: the text encoder's own
    export is checked in tests/unit/text."""
    from vitrine.model.config import EncoderConfig
    from vitrine.model.encoder import ProductEncoder
    from vitrine.model.export import _export, _item_module, _query_module, check_parity, example_inputs
    from vitrine.model.tasks import ComplementaryTask

    features = FeatureConfig(
        text_branch="hashed+sentence",
        text_buckets=1 << 12,
        category_buckets=1 << 10,
        brand_buckets=256,
        seller_buckets=64,
        sentence_dim=8,
        sentence_context=True,
    )
    products = load_dataset(DATASET).products[:16]
    encoder = ProductEncoder(features, EncoderConfig(dim=16))
    encoder.randomize_embeddings(torch.Generator().manual_seed(0))
    task = ComplementaryTask(encoder, TrainConfig(task="complementary"), torch.ones(1), torch.tensor([1]))
    task.eval()
    text_vec = np.random.default_rng(0).normal(size=(len(products), 8)).astype(np.float32)
    inputs = example_inputs(products, features, text_vec)
    assert list(inputs) == ["text_ids", "text_weights", "text_vec", *list(inputs)[3:]]
    item = _item_module(encoder)
    _export(item, tuple(inputs.values()), list(inputs), tmp_path / "item.onnx", target=False)
    assert check_parity(item, tmp_path / "item.onnx", inputs, None, "item").max_abs_diff < PARITY_TOLERANCE
    query = _query_module(task)
    target = torch.zeros(len(products), dtype=torch.int64)
    _export(query, (*inputs.values(), target), list(inputs), tmp_path / "query.onnx", target=True)
    assert (
        check_parity(query, tmp_path / "query.onnx", inputs, target, "query").max_abs_diff < PARITY_TOLERANCE
    )
    # the sentence vector changes the item vector: it is concatenated, not ignored
    with torch.no_grad():
        other = dict(inputs, text_vec=inputs["text_vec"] + 1.0)
        assert not torch.allclose(encoder(inputs), encoder(other))
    text = FeatureExtractor(features).sentence_text(products[0])
    assert products[0].title in text and products[0].category_path[-1] in text
