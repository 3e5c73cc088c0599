"""`vitrine refresh-prior`: re-mine a complementary model's category prior from recent purchases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "refresh-prior",
        help="write a new version of a complementary model's category map from recent purchases "
        "(the recommender swaps it in on SIGHUP, without a restart)",
    )
    parser.add_argument(
        "--model", dest="model_dir", type=Path, required=True, help="complementary model directory"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="KIND:PATH",
        help="interactions:kafka://HOST:PORT[?days=N] (or any `vitrine train` dataset)",
    )
    parser.add_argument("--min-support", type=int, default=2, help="category map: minimum pair support")
    parser.add_argument(
        "--min-pairs", type=int, default=10, help="keep the current prior below this many pairs"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitrine.data.datasets import load_dataset, merge_datasets, parse_specs
    from vitrine.errors import ConfigError
    from vitrine.feedback.priors import refresh_prior
    from vitrine.model.category_map import CategoryMapConfig

    try:
        config = CategoryMapConfig(min_support=args.min_support)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    dataset = merge_datasets([load_dataset(spec) for spec in parse_specs(args.dataset)])
    prior = refresh_prior(args.model_dir, dataset, config, min_pairs=args.min_pairs)
    print(
        json.dumps(
            {
                "model_dir": str(args.model_dir),
                "prior_version": prior.version,
                "pairs": prior.source["pairs"],
                "leaves_with_targets": len(prior.complementary_map),
            },
            indent=2,
        )
    )
    return 0
