"""`vitrine train --task intent --model DIR --dataset bundlerec:PATH`: add an intent tower to a model.

The model in DIR keeps its item tower, its weights and its model version (the index holds that
version's vectors and needs no rebuild); `vitrine export --model DIR` then exports the intent tower
with the other towers and the recommender's Inspire(intent=...) uses it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_intent_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("intent tower (--task intent)")
    group.add_argument(
        "--model", type=Path, metavar="DIR", help="the trained model to add the intent tower to"
    )
    group.add_argument(
        "--text-encoder",
        default=None,
        help="minilm | e5-small | a sentence-transformers directory (default: minilm)",
    )
    group.add_argument("--intent-epochs", type=int, default=None, help="maximum epochs")
    group.add_argument("--intent-lr", type=float, default=None, help="learning rate")
    group.add_argument("--intent-temperature", type=float, default=None, help="softmax temperature")
    group.add_argument("--intent-hidden", type=int, default=None, help="hidden layer size (0 = linear)")
    group.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        help="weight of the catalogue-title regression (0 = off)",
    )
    group.add_argument(
        "--intent-val-fraction", type=float, default=None, help="share of intents for validation"
    )
    group.add_argument("--intent-test-fraction", type=float, default=None, help="share of intents held out")
    group.add_argument(
        "--intent-lexical-weight",
        type=float,
        default=None,
        help="serving: weight of the TF-IDF cosine (intent vs title + category path) beside the tower's "
        "score when re-scoring its nearest candidates (default 4; 0 = the tower's vector alone)",
    )
    group.add_argument(
        "--intent-rerank-depth", type=int, default=None, help="serving: candidates re-scored (default 1000)"
    )
    # --cache-dir is `vitrine train`'s own option; for --task intent its default is $VITRINE_CACHE/vectors


def run_intent(args: argparse.Namespace) -> int:
    from vitrine.data.datasets import parse_spec
    from vitrine.data.intents import IntentSplitConfig
    from vitrine.errors import ConfigError
    from vitrine.model.intent import IntentConfig
    from vitrine.model.intent_pipeline import IntentSetup, run_intent_training
    from vitrine.model.intent_serving import IntentRescoring
    from vitrine.text.cache import DEFAULT_CACHE

    if args.model is None:
        raise ConfigError("--task intent needs --model DIR (a trained model to add the intent tower to)")
    if args.out is not None:
        raise ConfigError(
            "--task intent writes into --model DIR; --out is for similar / complementary models"
        )
    overrides = {
        "text_encoder": args.text_encoder,
        "epochs": args.intent_epochs,
        "learning_rate": args.intent_lr,
        "temperature": args.intent_temperature,
        "hidden_dim": args.intent_hidden,
        "distill_weight": args.distill_weight,
    }
    split_overrides = {"val_fraction": args.intent_val_fraction, "test_fraction": args.intent_test_fraction}
    try:
        config = IntentConfig(
            seed=args.seed, threads=args.threads, **{k: v for k, v in overrides.items() if v is not None}
        )
        split = IntentSplitConfig(
            seed=args.seed, **{k: v for k, v in split_overrides.items() if v is not None}
        )
        rescoring = IntentRescoring().overridden(args.intent_rerank_depth, args.intent_lexical_weight)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    card = run_intent_training(
        IntentSetup(
            args.model, parse_spec(args.dataset), config, split, args.cache_dir or DEFAULT_CACHE, rescoring
        )
    )
    metrics = {k: v for k, v in card.intent["metrics"].items() if k != "history"}
    summary = {
        "model_dir": str(args.model),
        "model_version": card.model_version,
        "intent_version": card.intent["version"],
        "intents": card.intent["split"]["intents"],
        "metrics": metrics,
    }
    print(json.dumps(summary, indent=2))
    return 0
