"""`vitrine train` end to end: data → pairs → split → category map → training → centroids → model dir."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
from vitrine.model.ensemble import EnsembleTask
from vitrine.model.lexical import LEXICAL_FILE, ProductTfidf, lexical_text
from vitrine.model.tasks import SimilarityTask, build_task
from vitrine.model.text_branch import sentence_vectors
from vitrine.model.train import (
    FeatureStore,
    TrainResult,
    encode_all,
    feature_tensors,
    train_task,
    validation_recalls,
)
from vitrine.model.zero_data import (
    RULES_FILE,
    ZeroDataConfig,
    default_rules,
    pseudo_pairs,
    read_rules,
    write_rules,
    zero_data_retrieval,
)

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
    # RetrievalConfig fields to set; the rest are the defaults of the model's kind (a zero-data model
    # re-scores deeper, words first: vitrine.model.zero_data.zero_data_retrieval)
    retrieval: dict[str, Any] = field(default_factory=dict)
    untrained: bool = False
    progress: bool = True
    cache_dir: Path | None = None  # sentence vectors of the catalogue (sentence text branches)
    # zero-data start (vitrine.model.zero_data): the complementary rule file; None = the default rule
    category_rules: Path | None = None
    # build the zero-data model even where the data has behaviour pairs: to measure it on the same
    # held-out pairs as a trained model, or to start from it while the behaviour is too thin to trust
    zero_data: bool = False


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
        "path": spec.path if spec.kind in ("synthetic", "interactions") else str(Path(spec.path).resolve()),
        "products": len(dataset.products),
        "reports": [r.to_dict() for r in dataset.reports],
    }


def fit_lexical(
    products: Sequence[Product], features: FeatureConfig, retrieval: RetrievalConfig
) -> ProductTfidf:
    """The idf table of hybrid complementary scoring, over the catalogue's `retrieval.lexical_text`
    as serving reads it (the description as far as the index payload keeps it)."""
    extractor = FeatureExtractor(features)
    return ProductTfidf.fit(
        lexical_text(retrieval.lexical_text, p.title, extractor.indexed_description(p)) for p in products
    )


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
    zero_data = not setup.untrained and (setup.zero_data or len(train_pairs) < cfg.batch_size)
    pool = np.array([i for i, p in enumerate(products) if splits[p.product_id] == "train"], dtype=np.int64)
    retrieval = replace(zero_data_retrieval() if zero_data else RetrievalConfig(), **setup.retrieval)
    if zero_data:
        held_out = {k: v for k, v in by_split.items() if k != "train"}
        by_split, train_pairs, cfg = _zero_data_pairs(setup, dataset, len(train_pairs), index, out_dir)
        # the behaviour's val/test pairs stay recorded (none was trained on): the split in the card
        # is the dataset's, so `vitrine eval recommend` scores the same pairs as for a trained model
        by_split.update(held_out)
        val_pairs = train_pairs  # nothing held out: there is no behaviour to generalise to
        pool = np.arange(len(products), dtype=np.int64)

    complementary_map: dict[str, list[str]] = {}
    category_prior: dict[str, Any] = {}
    if cfg.task == "complementary":
        complementary_map = mine_complementary_map(by_split["train"], dataset.by_id(), setup.category_map)
        category_prior = mine_category_prior(by_split["train"], dataset.by_id()).to_dict()

    store = prepare_features(products, setup.features, setup.cache_dir)
    rare_buckets = store.mask_rare_tokens(cfg.min_token_products)
    log.info("text buckets left out (in < %d products): %d", cfg.min_token_products, len(rare_buckets))
    popularity = torch.from_numpy(
        np.bincount(train_pairs[:, 1], minlength=len(products)).astype(np.float32) + 1.0
    )
    popularity /= popularity.sum()
    candidates = None
    if cfg.task == "complementary":
        candidates = torch.unique(store.tensors["leaf_id"][torch.from_numpy(train_pairs[:, 1])])
    members: list[SimilarityTask] = []
    results: list[TrainResult] = []
    for i in range(setup.encoder.members):
        # member 0 is the single model a one-member setup trains (same seeds); the others differ in
        # initialisation and batch order only
        member_cfg = cfg if i == 0 else replace(cfg, seed=cfg.seed + i)
        if i > 0:
            torch.manual_seed(member_cfg.seed)
        encoder = ProductEncoder(setup.features, setup.encoder)
        if setup.untrained:
            encoder.randomize_embeddings(torch.Generator().manual_seed(member_cfg.seed))
        member = build_task(encoder, member_cfg, popularity, candidates, pool_size=len(pool))
        if not setup.untrained and cfg.epochs > 0:
            if setup.encoder.members > 1:
                log.info("ensemble member %d of %d", i + 1, setup.encoder.members)
            results.append(
                train_task(member, store, train_pairs, val_pairs, member_cfg, pool, progress=setup.progress)
            )
        encoder.zero_text_rows(rare_buckets)
        members.append(member)
    task: SimilarityTask | EnsembleTask = members[0] if len(members) == 1 else EnsembleTask(members)
    task.eval()
    items = encode_all(task, store)

    metrics: dict[str, Any] = {}
    if results:
        metrics = _training_metrics(task, store, val_pairs, items, results, cfg.eval_k)
        # a zero-data model has no held-out behaviour to choose its epoch on: its own pseudo pairs
        metrics["selected_on"] = "pseudo_pairs" if zero_data else "val"
    items = items.numpy()
    centroids = fit_centroids(items, cfg.kmeans_k, cfg.seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = save_weights(task, out_dir)
    save_centroids(centroids, out_dir)
    files = {"weights": WEIGHTS_FILE}
    if centroids is not None:
        files["centroids"] = CENTROIDS_FILE
    if cfg.task == "complementary":
        fit_lexical(products, setup.features, retrieval).save(out_dir)
        files["lexical"] = LEXICAL_FILE
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    card = ModelCard(
        model_version=make_model_version(cfg.task, weights),
        task=cfg.task,
        dim=setup.encoder.dim * setup.encoder.members,
        untrained=setup.untrained,
        kind="untrained" if setup.untrained else "zero_data" if zero_data else "trained",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        features=setup.features.to_dict(),
        encoder=setup.encoder.to_dict(),
        train=cfg.to_dict(),
        complementary_map=complementary_map,
        category_prior=category_prior,
        retrieval=retrieval.to_dict() if cfg.task == "complementary" else {},
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


def _member_metrics(result: TrainResult) -> dict[str, Any]:
    return {
        "best_epoch": result.best_epoch,
        # what the best epoch scored: served (selection) and, for complementary, the oracle
        "best": result.best_record,
        "stopped_early": result.stopped_early,
        "history": result.history,
    }


def _training_metrics(
    task: SimilarityTask | EnsembleTask,
    store: FeatureStore,
    val_pairs: np.ndarray,
    items: torch.Tensor,
    results: Sequence[TrainResult],
    eval_k: int,
) -> dict[str, Any]:
    """The card's metrics: one model's best epoch, or an ensemble's validation recall and each
    member's record (every member chose its own epoch on the same validation pairs)."""
    if len(results) == 1:
        return {f"val_recall@{eval_k}": results[0].best_val_recall, **_member_metrics(results[0])}
    best = validation_recalls(task, store, val_pairs, items, eval_k)
    return {
        f"val_recall@{eval_k}": best[f"val_recall@{eval_k}"],
        "best": best,
        "members": [_member_metrics(r) for r in results],
    }


def _zero_data_pairs(
    setup: TrainingSetup, dataset: Dataset, behaviour_pairs: int, index: dict[str, int], out_dir: Path
) -> tuple[dict[str, list[tuple[str, str]]], np.ndarray, TrainConfig]:
    """Pseudo pairs from the catalogue alone (vitrine.model.zero_data), and the training settings
    that fit them: the batch shrinks to the pairs there are (a small shop has few)."""
    cfg = setup.train
    rules = None
    if cfg.task == "complementary":
        if setup.category_rules is not None:
            rules, source = read_rules(setup.category_rules), str(setup.category_rules)
        else:
            rules, source = (
                default_rules(dataset.products),
                f"the default rule, written to {out_dir / RULES_FILE}",
            )
    pairs = pseudo_pairs(cfg.task, dataset.products, rules)
    reason = (
        f"--zero-data: the {behaviour_pairs} {cfg.task} behaviour training pairs are not used"
        if setup.zero_data
        else f"{dataset.name} has {behaviour_pairs} {cfg.task} behaviour pairs (a batch needs {cfg.batch_size})"
    )
    log.warning(
        "%s: building a ZERO-DATA model from the catalogue alone (%s). Serve it as any model; train "
        "again once you have co-view / co-purchase data (docs/CATALOGUE.md)",
        reason,
        "titles and the category tree"
        if cfg.task == "similar"
        else f"the category tree and category rules from {source}",
    )
    if len(pairs) < 2:
        hint = "" if cfg.task == "similar" else " or name more categories in the rule file (--category-rules)"
        raise DataError(
            f"{dataset.name}: {len(pairs)} {cfg.task} pairs even without behaviour data; a catalogue needs "
            f"products that share a category{hint}"
        )
    if rules is not None and setup.category_rules is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_rules(rules, out_dir / RULES_FILE)
    by_split = {"train": pairs, "val": [], "test": []}
    batch = 1 << (min(cfg.batch_size, len(pairs)).bit_length() - 1)  # a power of two <= the pairs
    cfg = replace(cfg, batch_size=max(2, batch), epochs=min(cfg.epochs, ZeroDataConfig().max_epochs))
    return by_split, index_pairs(pairs, index), cfg
