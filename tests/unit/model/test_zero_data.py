"""Zero-data start (issue 17): a shop's own JSONL catalogue with no co-view or co-purchase data.
`vitrine train` failed with "only 0 similar training pairs"; now it builds a zero-data model, says so,
and `vitrine export` and the served code take it as any other model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitrine.catalog.schema import Product
from vitrine.model.card import read_card
from vitrine.model.zero_data import (
    RULES_FILE,
    ZeroDataConfig,
    complementary_pseudo_pairs,
    default_rules,
    read_rules,
    similar_pseudo_pairs,
)

# 18 products of a bike shop, as the newcomer of issue 17 had them: no also_view, no bundles
BIKE_SHOP = [
    ("b1", "Trail mountain bike 29 aluminium", ["Bikes", "Bicycles", "Mountain Bikes"]),
    ("b2", "Enduro mountain bike 27.5 carbon", ["Bikes", "Bicycles", "Mountain Bikes"]),
    ("b3", "Hardtail mountain bike 29", ["Bikes", "Bicycles", "Mountain Bikes"]),
    ("b4", "Endurance road bike carbon", ["Bikes", "Bicycles", "Road Bikes"]),
    ("b5", "Aero road bike disc", ["Bikes", "Bicycles", "Road Bikes"]),
    ("b6", "Gravel road bike steel", ["Bikes", "Bicycles", "Road Bikes"]),
    ("h1", "MIPS trail helmet", ["Bikes", "Gear", "Helmets"]),
    ("h2", "Road helmet lightweight", ["Bikes", "Gear", "Helmets"]),
    ("h3", "Commuter helmet with light", ["Bikes", "Gear", "Helmets"]),
    ("l1", "USB front bike light 800 lumen", ["Bikes", "Gear", "Lights"]),
    ("l2", "Rear bike light red", ["Bikes", "Gear", "Lights"]),
    ("l3", "Bike light set front and rear", ["Bikes", "Gear", "Lights"]),
    ("k1", "U-lock hardened steel", ["Bikes", "Gear", "Locks"]),
    ("k2", "Folding lock", ["Bikes", "Gear", "Locks"]),
    ("k3", "Cable lock with key", ["Bikes", "Gear", "Locks"]),
    ("t1", "Tubeless tyre 29 x 2.4", ["Bikes", "Parts", "Tyres"]),
    ("t2", "Road tyre 700 x 28", ["Bikes", "Parts", "Tyres"]),
    ("t3", "Gravel tyre 700 x 40", ["Bikes", "Parts", "Tyres"]),
]
DATASET_ROWS = [
    {"product_id": pid, "title": title, "category_path": path, "price": 10.0 + i, "currency": "EUR"}
    for i, (pid, title, path) in enumerate(BIKE_SHOP)
]


def _products() -> list[Product]:
    return [Product(pid, title, category_path=tuple(path)) for pid, title, path in BIKE_SHOP]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bike-shop") / "catalogue.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in DATASET_ROWS))
    return path


def _vitrine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitrine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_similar_pseudo_pairs_stay_in_the_leaf_and_prefer_shared_title_words() -> None:
    pairs = similar_pseudo_pairs(_products(), ZeroDataConfig(similar_neighbours=2))
    leaf = {pid: path[-1] for pid, _, path in BIKE_SHOP}
    assert pairs and all(leaf[a] == leaf[b] and a != b for a, b in pairs)
    # "Trail mountain bike 29" shares most words with the 29-inch hardtail
    assert next(b for a, b in pairs if a == "b1") == "b3"


def test_default_rules_pair_sibling_leaves_and_an_edited_rule_file_wins(tmp_path: Path) -> None:
    rules = default_rules(_products())
    assert rules["Helmets"] == ["Lights", "Locks"]
    assert rules["Mountain Bikes"] == ["Road Bikes"]
    edited = tmp_path / "rules.yaml"
    edited.write_text("Bicycles: [Helmets, Lights, Locks]\n")
    pairs = complementary_pseudo_pairs(_products(), read_rules(edited), ZeroDataConfig())
    leaf = {pid: path[-1] for pid, _, path in BIKE_SHOP}
    assert pairs
    assert {leaf[a] for a, _ in pairs} == {"Mountain Bikes", "Road Bikes"}  # the rule names a parent
    assert {leaf[b] for _, b in pairs} == {"Helmets", "Lights", "Locks"}


def test_lexical_pseudo_pairs_cross_leaves_by_shared_title_words() -> None:
    from vitrine.model.zero_data import lexical_pseudo_pairs

    pairs = lexical_pseudo_pairs(_products(), k=2)
    leaf = {pid: path[-1] for pid, _, path in BIKE_SHOP}
    assert pairs and all(leaf[a] != leaf[b] for a, b in pairs)  # never the own leaf (nor itself)
    # the commuter helmet "with light" goes with a light; the 29-inch tubeless tyre with a 29er
    assert {leaf[b] for a, b in pairs if a == "h3"} == {"Lights"}
    assert any(b in ("b1", "b3") for a, b in pairs if a == "t1")
    assert lexical_pseudo_pairs(_products(), k=0) == []


def test_a_malformed_rule_file_is_a_clear_error(tmp_path: Path) -> None:
    from vitrine.errors import DataError

    bad = tmp_path / "rules.yaml"
    bad.write_text("Bicycles: Helmets\n")
    with pytest.raises(DataError, match="maps a category to a list"):
        read_rules(bad)


@pytest.mark.slow
def test_train_on_a_catalogue_without_pairs_builds_a_zero_data_model_that_exports_and_serves(
    catalogue: Path, tmp_path: Path
) -> None:
    # before: "only 0 similar training pairs in ...; need at least one batch", exit 1
    out = tmp_path / "similar"
    train = _vitrine(
        "train", "--task", "similar", "--dataset", f"jsonl:{catalogue}", "--out", str(out), "--no-progress"
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "ZERO-DATA model" in train.stderr
    card = read_card(out)
    assert card.kind == "zero_data" and card.model_kind == "zero_data"
    exported = _vitrine("export", "--model", str(out), "--dataset", f"jsonl:{catalogue}")
    assert exported.returncode == 0, exported.stderr[-3000:]

    from vitrine.model.inference import load_inference_model

    model = load_inference_model(out, threads=1)
    products = _products()
    vectors = model.encode_items(products)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    leaf = [p.category_path[-1] for p in products]
    same_leaf_first = 0
    for i in range(len(products)):
        sims = vectors @ vectors[i]
        sims[i] = -np.inf
        same_leaf_first += leaf[int(np.argmax(sims))] == leaf[i]
    # the nearest product is of the same leaf for most products (random towers: ~2/17 by chance)
    assert same_leaf_first >= 12, same_leaf_first


@pytest.mark.slow
def test_complementary_zero_data_model_writes_its_editable_rules(catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "complementary"
    train = _vitrine(
        "train",
        "--task",
        "complementary",
        "--dataset",
        f"jsonl:{catalogue}",
        "--out",
        str(out),
        "--epochs",
        "3",
        "--no-progress",
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "ZERO-DATA model" in train.stderr and RULES_FILE in train.stderr
    rules = read_rules(out / RULES_FILE)
    assert rules["Helmets"] == ["Lights", "Locks"]
    card = read_card(out)
    assert card.kind == "zero_data"
    assert set(card.complementary_map.get("Helmets", [])) <= {"Lights", "Locks"}
    # issue 17: "leaf categories the model never saw give an empty Complementary list". Tyres is the
    # only leaf under its parent, so the default rule names nothing for it; the served path (every
    # category searched, vitrine.serving.complementary) still answers, from the other leaves
    assert rules["Tyres"] == []
    exported = _vitrine("export", "--model", str(out), "--dataset", f"jsonl:{catalogue}")
    assert exported.returncode == 0, exported.stderr[-3000:]

    from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
    from vitrine.index.port import SearchFilter
    from vitrine.model.inference import load_inference_model
    from vitrine.serving.anchors import AnchorRef
    from vitrine.serving.complementary import ComplementaryQuery, complementary
    from vitrine.serving.deadline import Deadline
    from vitrine.serving.registry import ServedModel
    from vitrine.serving.selection import RequestFilter
    from vitrine.stream.pipeline import encode_products

    model = load_inference_model(out, threads=1)
    products = _products()
    index = EdgeIndex(EdgeIndexConfig(tmp_path / "shard", model.dim, fresh=True, wal=False))
    index.apply(encode_products(model, products))
    served = ServedModel("zero", model.model_version, "complementary", index, model)
    query = ComplementaryQuery(AnchorRef("t1"), 5, filters=RequestFilter(SearchFilter(in_stock_only=False)))
    listed = complementary(served, query, Deadline.none(), exact=True)
    leaf = {p.product_id: p.category_path[-1] for p in products}
    assert len(listed) == 5 and all(leaf[r.product_id] != "Tyres" for r in listed), listed
    index.close()


def test_zero_data_flag_ignores_behaviour_pairs_and_keeps_the_datasets_split(tmp_path: Path) -> None:
    # --zero-data on a dataset with behaviour: without the flag synthetic:200 trains on its pairs; with
    # it the towers learn pseudo pairs only, and the card keeps the dataset's split (its held-out pairs
    # counted, none trained on) so that `vitrine eval recommend` scores the trained model's test pairs
    from vitrine.catalog.features import FeatureConfig
    from vitrine.data.datasets import load_dataset, parse_specs
    from vitrine.data.pairs import PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
    from vitrine.model.config import TrainConfig
    from vitrine.model.pipeline import TrainingSetup, run_training

    setup = TrainingSetup(
        specs=tuple(parse_specs("synthetic:200")),
        train=TrainConfig(epochs=1, batch_size=64, uniform_negatives=32, kmeans_k=4),
        features=FeatureConfig(
            text_buckets=1 << 12, category_buckets=1 << 10, brand_buckets=256, seller_buckets=64
        ),
        progress=False,
        zero_data=True,
    )
    card = run_training(setup, tmp_path)
    dataset = load_dataset("synthetic:200")
    behaviour = split_pairs(
        task_pairs(dataset, "similar", PairConfig()), product_splits(dataset.products, SplitConfig())
    )
    assert len(behaviour["train"]) >= 64  # without the flag this would be a trained model
    assert card.kind == "zero_data" and card.metrics["selected_on"] == "pseudo_pairs"
    pseudo = similar_pseudo_pairs(dataset.products, ZeroDataConfig())
    assert card.split["pairs"]["train"] == len(pseudo) != len(behaviour["train"])
    assert card.split["pairs"]["test"] == len(behaviour["test"]) > 0
    assert card.split["seed"] == SplitConfig().seed
