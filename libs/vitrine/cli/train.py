"""`vitrine train`: train a similar or complementary two-tower model into a model directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vitrine.model.config import EncoderConfig, RetrievalConfig, TrainConfig  # plain dataclasses: no torch

TASKS = ("similar", "complementary")
TEXT_BRANCHES = ("hashed", "sentence", "hashed+sentence")
DEFAULTS = TrainConfig()


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a two-tower model (similar | complementary)",
        description="Train the Product Encoder on behaviour pairs and write DIR/model.json + weights.",
    )
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="KIND:PATH[,KIND:PATH]",
        help="bundlerec:DIR, amazon:FILE.json.gz, jsonl:FILE, synthetic:N (comma-separated to combine)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="model directory to write")
    parser.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs, help="maximum epochs (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--lr", type=float, default=DEFAULTS.learning_rate, help="learning rate (default: %(default)s)"
    )
    parser.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    parser.add_argument(
        "--negatives", type=int, default=DEFAULTS.uniform_negatives, help="uniform negatives per batch"
    )
    parser.add_argument("--no-logq", action="store_true", help="disable the logQ correction")
    parser.add_argument(
        "--aux-weight",
        type=float,
        default=DEFAULTS.aux_weight,
        help="complementary: target-category reconstruction loss weight (default: off)",
    )
    parser.add_argument(
        "--lexical-weight",
        type=float,
        default=None,
        help="complementary serving: weight of the title TF-IDF cosine next to the tower's logit "
        "(stored in the model card; default 10, 0 = tower only)",
    )
    parser.add_argument(
        "--conditional-weight",
        type=float,
        default=DEFAULTS.conditional_weight,
        help="complementary: loss weight of the query given the true target category, next to the "
        "any-category query that serves (default: %(default)s)",
    )
    parser.add_argument(
        "--patience", type=int, default=DEFAULTS.patience, help="early stopping patience in epochs"
    )
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0 = full pass)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--dim", type=int, default=EncoderConfig().dim, help="embedding size")
    parser.add_argument("--text-branch", choices=TEXT_BRANCHES, default="hashed")
    parser.add_argument(
        "--sentence-encoder", default="minilm", help="sentence text branch: minilm | e5-small | PATH"
    )
    parser.add_argument("--min-coview", type=int, default=1, help="co-view count a similar pair needs")
    parser.add_argument(
        "--similar-includes-copurchase",
        action="store_true",
        help="keep co-viewed pairs that were also bought together as similar pairs (default: drop them)",
    )
    parser.add_argument("--min-support", type=int, default=2, help="category map: minimum pair support")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument(
        "--kmeans-k", type=int, default=DEFAULTS.kmeans_k, help="centroids for inspirational serving"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument(
        "--untrained", action="store_true", help="write a randomly initialised model (smoke tests only)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="sentence text branches: cache of the catalogue's sentence vectors (default: the eval cache)",
    )
    parser.set_defaults(handler=run)


def _default_cache() -> Path:
    from vitrine.cli.eval_recommend import DEFAULT_CACHE

    return DEFAULT_CACHE


def run(args: argparse.Namespace) -> int:
    from vitrine.catalog.features import FeatureConfig
    from vitrine.data.datasets import parse_specs
    from vitrine.data.pairs import PairConfig, SplitConfig
    from vitrine.errors import ConfigError
    from vitrine.model.category_map import CategoryMapConfig
    from vitrine.model.pipeline import TrainingSetup, run_training

    try:
        features = FeatureConfig(text_branch=args.text_branch)
        if args.text_branch != "hashed":
            from vitrine.model.text_branch import encoder_dimension, load_text_encoder

            dim = encoder_dimension(load_text_encoder(args.sentence_encoder))
            features = FeatureConfig(
                text_branch=args.text_branch,
                sentence_encoder=args.sentence_encoder,
                sentence_dim=dim,
                # the concatenated branch reads title, category path and description
                sentence_context=args.text_branch == "hashed+sentence",
            )
        setup = TrainingSetup(
            specs=tuple(parse_specs(args.dataset)),
            train=TrainConfig(
                task=args.task,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                temperature=args.temperature,
                uniform_negatives=args.negatives,
                logq_correction=not args.no_logq,
                aux_weight=args.aux_weight,
                conditional_weight=args.conditional_weight,
                patience=args.patience,
                seed=args.seed,
                kmeans_k=args.kmeans_k,
                max_steps_per_epoch=args.max_steps,
                threads=args.threads,
            ),
            features=features,
            encoder=EncoderConfig(dim=args.dim),
            pairs=PairConfig(
                min_coview=args.min_coview, similar_excludes_copurchase=not args.similar_includes_copurchase
            ),
            split=SplitConfig(
                seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction
            ),
            category_map=CategoryMapConfig(min_support=args.min_support),
            retrieval=RetrievalConfig()
            if args.lexical_weight is None
            else RetrievalConfig(lexical_weight=args.lexical_weight),
            untrained=args.untrained,
            progress=not args.no_progress,
            cache_dir=args.cache_dir or _default_cache(),
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    card = run_training(setup, args.out)
    summary = {
        "model_dir": str(args.out),
        "model_version": card.model_version,
        "pairs": card.split.get("pairs"),
        "metrics": {k: v for k, v in card.metrics.items() if k != "history"},
    }
    print(json.dumps(summary, indent=2))
    return 0
