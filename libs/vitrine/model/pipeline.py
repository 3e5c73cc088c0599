"""`vitrine train` end to end: data → pairs → split → category map → training → centroids → model dir."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, DatasetSpec, load_dataset, merge_datasets
from vitrine.data.pairs import PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
from vitrine.errors import DataError
from vitrine.model.artifacts import save_centroids, save_weights
from vitrine.model.card import CENTROIDS_FILE, WEIGHTS_FILE, ModelCard, make_model_version
from vitrine.model.category_map import CategoryMapConfig, mine_category_prior, mine_complementary_map
from vitrine.model.clusters import fit_centroids
from vitrine.model.config import EncoderConfig, RetrievalConfig, TrainConfig
from vitrine.model.encoder import ProductEncoder
from vitrine.model.lexical import LEXICAL_FILE, TitleTfidf
from vitrine.model.tasks import build_task
from vitrine.model.text_branch import sentence_vectors
from vitrine.model.train import FeatureStore, encode_all, feature_tensors, train_task

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainingSetup:
    specs: tuple[DatasetSpec, ...]
    train: TrainConfig = field(default_factory=TrainConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    category_map: CategoryMapConfig = field(default_factory=CategoryMapConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    untrained: bool = False
    progress: bool = True
    cache_dir: Path | None = None  # sentence vectors of the catalogue (sentence text branches)


def index_pairs(pairs: Sequence[tuple[str, str]], index: dict[str, int]) -> np.ndarray:
    return np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int64).reshape(-1, 2)


def prepare_features(
    products: Sequence[Product], config: FeatureConfig, cache_dir: Path | None = None
) -> FeatureStore:
    features = FeatureExtractor(config).extract(products)
    text_vec = sentence_vectors(products, config, cache_dir=cache_dir) if config.uses_sentence else None
    return FeatureStore(feature_tensors(features, text_vec))


def _dataset_record(spec: DatasetSpec, dataset: Dataset) -> dict[str, Any]:
    return {
        "spec": spec.label,
        "path": spec.path if spec.kind == "synthetic" else str(Path(spec.path).resolve()),
        "products": len(dataset.products),
        "reports": [r.to_dict() for r in dataset.reports],
    }


def run_training(setup: TrainingSetup, out_dir: Path) -> ModelCard:
    started = time.perf_counter()
    cfg = setup.train
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    datasets = [load_dataset(spec) for spec in setup.specs]
    dataset = merge_datasets(datasets)
    products = dataset.products
    index = {p.product_id: i for i, p in enumerate(products)}
    splits = product_splits(products, setup.split)
    by_split = split_pairs(task_pairs(dataset, cfg.task, setup.pairs), splits)
    train_pairs, val_pairs = index_pairs(by_split["train"], index), index_pairs(by_split["val"], index)
    log.info("pairs: %s", {k: len(v) for k, v in by_split.items()})
    if not setup.untrained and len(train_pairs) < cfg.batch_size:
        raise DataError(
            f"only {len(train_pairs)} {cfg.task} training pairs in {dataset.name}; need at least one batch"
        )

    complementary_map: dict[str, list[str]] = {}
    category_prior: dict[str, Any] = {}
    if cfg.task == "complementary":
        complementary_map = mine_complementary_map(by_split["train"], dataset.by_id(), setup.category_map)
        category_prior = mine_category_prior(by_split["train"], dataset.by_id()).to_dict()

    store = prepare_features(products, setup.features, setup.cache_dir)
    rare_buckets = store.mask_rare_tokens(cfg.min_token_products)
    log.info("text buckets left out (in < %d products): %d", cfg.min_token_products, len(rare_buckets))
    encoder = ProductEncoder(setup.features, setup.encoder)
    if setup.untrained:
        encoder.randomize_embeddings(torch.Generator().manual_seed(cfg.seed))
    popularity = torch.from_numpy(
        np.bincount(train_pairs[:, 1], minlength=len(products)).astype(np.float32) + 1.0
    )
    popularity /= popularity.sum()
    candidates = None
    if cfg.task == "complementary":
        candidates = torch.unique(store.tensors["leaf_id"][torch.from_numpy(train_pairs[:, 1])])
    pool = np.array([i for i, p in enumerate(products) if splits[p.product_id] == "train"], dtype=np.int64)
    task = build_task(encoder, cfg, popularity, candidates, pool_size=len(pool))

    metrics: dict[str, Any] = {}
    if not setup.untrained and cfg.epochs > 0:
        result = train_task(task, store, train_pairs, val_pairs, cfg, pool, progress=setup.progress)
        metrics = {
            "best_epoch": result.best_epoch,
            f"val_recall@{cfg.eval_k}": result.best_val_recall,
            # what the best epoch scored: served (selection) and, for complementary, the oracle
            "best": result.best_record,
            "stopped_early": result.stopped_early,
            "history": result.history,
        }
    encoder.zero_text_rows(rare_buckets)
    task.eval()
    items = encode_all(task, store).numpy()
    centroids = fit_centroids(items, cfg.kmeans_k, cfg.seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = save_weights(task, out_dir)
    save_centroids(centroids, out_dir)
    files = {"weights": WEIGHTS_FILE}
    if centroids is not None:
        files["centroids"] = CENTROIDS_FILE
    if cfg.task == "complementary":
        TitleTfidf.fit(p.title for p in products).save(out_dir)
        files["lexical"] = LEXICAL_FILE
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    card = ModelCard(
        model_version=make_model_version(cfg.task, weights),
        task=cfg.task,
        dim=setup.encoder.dim,
        untrained=setup.untrained,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        features=setup.features.to_dict(),
        encoder=setup.encoder.to_dict(),
        train=cfg.to_dict(),
        complementary_map=complementary_map,
        category_prior=category_prior,
        retrieval=setup.retrieval.to_dict() if cfg.task == "complementary" else {},
        pairs=setup.pairs.to_dict(),
        split={
            **setup.split.to_dict(),
            "products": dict(sorted(Counter(splits.values()).items())),
            "pairs": {k: len(v) for k, v in by_split.items()},
        },
        category_map=setup.category_map.to_dict(),
        data={"datasets": [_dataset_record(s, d) for s, d in zip(setup.specs, datasets, strict=True)]},
        metrics=metrics,
        files=files,
    )
    card.save(out_dir)
    log.info("wrote %s (%s) in %.1fs", out_dir, card.model_version, metrics["train_seconds"])
    return card
