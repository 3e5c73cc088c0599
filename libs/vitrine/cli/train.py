"""`vitrine train`: train a similar or complementary two-tower model into a model directory, or add an
intent tower to one (`--task intent --model DIR`, see `vitrine.cli.train_intent`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vitrine.model.config import (  # plain dataclasses: no torch
    COMPLEMENTARY_MEMBERS,
    EncoderConfig,
    RetrievalConfig,
    TrainConfig,
)
from vitrine.model.lexical import LEXICAL_TEXTS  # plain Python: no torch
from vitrine.model.zero_data import ZeroDataConfig

TASKS = ("similar", "complementary", "intent")
TEXT_BRANCHES = ("hashed", "sentence", "hashed+sentence")
DEFAULTS = TrainConfig()


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a two-tower model (similar | complementary) or add an intent tower (intent)",
        description="Train the Product Encoder on behaviour pairs and write DIR/model.json + weights. "
        "A catalogue without co-view / co-purchase data gets a zero-data model built from its titles "
        "and category tree (complementary: and category rules); see docs/CATALOGUE.md. "
        "--task intent --model DIR adds an intent tower to the model in DIR.",
    )
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="KIND:PATH[,KIND:PATH]",
        help="bundlerec:DIR, amazon:FILE.json.gz, jsonl:FILE, synthetic:N, "
        "interactions:kafka://HOST:PORT[?days=N] (the interaction log; comma-separated to combine)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="model directory to write (similar, complementary)"
    )
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
        "--logq-weight",
        type=float,
        default=DEFAULTS.logq_weight,
        help="share of the logQ correction applied (default: %(default)s = full)",
    )
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
        help="complementary serving: weight of the TF-IDF cosine next to the tower's logit "
        f"(stored in the model card; default {RetrievalConfig().lexical_weight:g}, a zero-data model "
        f"{ZeroDataConfig().complementary_lexical_weight:g}; 0 = tower only)",
    )
    parser.add_argument(
        "--lexical-text",
        choices=LEXICAL_TEXTS,
        default=None,
        help="complementary serving: what the TF-IDF cosine reads of each product (stored in the model "
        f"card; default {RetrievalConfig().lexical_text})",
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
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the train/val/test split (default: --seed); vary --seed alone to see the "
        "spread of one split's result over initialisations",
    )
    parser.add_argument("--dim", type=int, default=EncoderConfig().dim, help="embedding size")
    parser.add_argument(
        "--members",
        type=int,
        default=None,
        help="towers trained independently and served as one ensemble (vectors dim x members; "
        f"default: {COMPLEMENTARY_MEMBERS} for a trained complementary model, else 1)",
    )
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
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS.threads,
        help="torch intra-op threads (default: %(default)s; 0 = one per core, slower for these small towers)",
    )
    parser.add_argument(
        "--category-rules",
        type=Path,
        default=None,
        metavar="FILE",
        help="zero-data complementary model: YAML 'category: [categories that go with it]' (default: "
        "sibling leaves; written to DIR/category_rules.yaml to edit)",
    )
    parser.add_argument(
        "--zero-data",
        action="store_true",
        help="build the zero-data model even where the data has behaviour pairs (none is trained on; the "
        "dataset's split is kept, so `vitrine eval recommend` measures it on a trained model's test pairs)",
    )
    parser.add_argument(
        "--untrained", action="store_true", help="write a randomly initialised model (smoke tests only)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="sentence text branches and intent towers: cache of sentence vectors (default: the eval cache)",
    )
    from vitrine.cli.train_intent import add_intent_arguments

    add_intent_arguments(parser)
    parser.set_defaults(handler=run)


def _members(args: argparse.Namespace) -> int:
    if args.members is not None:
        return args.members
    trained = not (args.untrained or args.zero_data)
    return COMPLEMENTARY_MEMBERS if args.task == "complementary" and trained else 1


def _default_cache() -> Path:
    from vitrine.cli.eval_recommend import DEFAULT_CACHE

    return DEFAULT_CACHE


def run(args: argparse.Namespace) -> int:
    if args.task == "intent":
        from vitrine.cli.train_intent import run_intent

        return run_intent(args)
    from vitrine.catalog.features import FeatureConfig
    from vitrine.data.datasets import parse_specs
    from vitrine.data.pairs import PairConfig, SplitConfig
    from vitrine.errors import ConfigError
    from vitrine.model.category_map import CategoryMapConfig
    from vitrine.model.pipeline import TrainingSetup, run_training

    if args.out is None:
        raise ConfigError(f"--task {args.task} needs --out DIR (the model directory to write)")
    retrieval = {
        k: v
        for k, v in (("lexical_weight", args.lexical_weight), ("lexical_text", args.lexical_text))
        if v is not None
    }
    try:
        RetrievalConfig(**retrieval)  # a bad value is a clear error now, not a traceback from training
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
                logq_weight=args.logq_weight,
                aux_weight=args.aux_weight,
                conditional_weight=args.conditional_weight,
                patience=args.patience,
                seed=args.seed,
                kmeans_k=args.kmeans_k,
                max_steps_per_epoch=args.max_steps,
                threads=args.threads,
            ),
            features=features,
            encoder=EncoderConfig(dim=args.dim, members=_members(args)),
            pairs=PairConfig(
                min_coview=args.min_coview, similar_excludes_copurchase=not args.similar_includes_copurchase
            ),
            split=SplitConfig(
                seed=args.seed if args.split_seed is None else args.split_seed,
                val_fraction=args.val_fraction,
                test_fraction=args.test_fraction,
            ),
            category_map=CategoryMapConfig(min_support=args.min_support),
            retrieval=retrieval,
            untrained=args.untrained,
            progress=not args.no_progress,
            category_rules=args.category_rules,
            zero_data=args.zero_data,
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
