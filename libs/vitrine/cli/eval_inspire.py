"""`vitrine eval inspire`: Inspire from a browsing history, both strategies against three baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "inspire",
        help="evaluate Inspire from user histories (clusters and MMR) against baselines",
        description='Prints {"model": {"clusters": {...}, "mmr": {...}}, "baselines": {"popularity", '
        '"last_item_knn", "random"}, "users": N} with recall@10, recall@50, categories@10, ild@10, '
        "coverage and novel_share@10 of the served lists (50 items, exact search).",
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="exported model directory")
    parser.add_argument(
        "--dataset", required=True, metavar="bundlerec:PATH", help="a BundleRec folder with user_item.csv"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON object (no table)")
    parser.add_argument(
        "--users",
        choices=("test", "val", "all"),
        default="test",
        help="which half of the users (by a seeded hash)",
    )
    parser.add_argument("--seed", type=int, default=13, help="user split seed; also the random baseline's")
    parser.add_argument(
        "--clusters", type=int, default=None, help="nearest clusters per anchor (API default 3)"
    )
    parser.add_argument(
        "--skip-clusters", type=int, default=None, help="nearest clusters skipped (API default 0)"
    )
    parser.add_argument("--anchors", type=int, default=None, help="history anchors (API default 5)")
    parser.add_argument("--mmr-diversity", type=float, default=None, help="MMR diversity (API default 0.5)")
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="PNG", help="recall@50 against categories@10, per ranker"
    )
    parser.set_defaults(handler=run)


def table(result: Any) -> str:
    from vitrine.eval.inspire import METRICS

    rows = [*(f"inspire, {k}" for k in result.model), *result.baselines]
    values = [*result.model.values(), *result.baselines.values()]
    lines = ["| ranker | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    lines += [
        f"| {n} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |"
        for n, m in zip(rows, values, strict=True)
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vitrine.data.datasets import load_dataset, parse_spec
    from vitrine.errors import ConfigError
    from vitrine.eval.inspire import InspireKnobs, evaluate_inspire, with_knobs
    from vitrine.model.inference import load_inference_model

    spec = parse_spec(args.dataset)
    if spec.kind != "bundlerec":
        raise ConfigError(f"eval inspire reads user histories from a BundleRec folder, got {spec.kind!r}")
    knobs = with_knobs(
        InspireKnobs(),
        nearest_clusters=args.clusters,
        skip_clusters=args.skip_clusters,
        max_anchors=args.anchors,
        mmr_diversity=args.mmr_diversity,
    )
    model = load_inference_model(args.model)
    try:
        result = evaluate_inspire(
            model, load_dataset(spec), Path(spec.path), users=args.users, seed=args.seed, knobs=knobs
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not args.json:
        print(
            f"{spec.label}: {result.users} {args.users} users; model {model.model_version}; knobs {result.knobs}"
        )
        print(table(result))
    if args.plot is not None:
        from vitrine.eval.plots import plot_tradeoff

        points = {**{f"inspire, {k}": v for k, v in result.model.items()}, **result.baselines}
        title = f"Inspire from a history: {spec.label.split('/')[-1]}, {result.users} {args.users} users"
        plot_tradeoff(points, "categories@10", "recall@50", title, args.plot)
    print(json.dumps(result.to_json(), indent=None if args.json else 2))
    return 0
