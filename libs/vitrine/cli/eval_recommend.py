"""`vitrine eval recommend`: a model (as served) and the baselines on the same held-out pairs, as one JSON object."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

TASKS = ("similar", "complementary")
DEFAULT_CACHE = Path(os.environ.get("VITRINE_CACHE", Path.home() / ".cache" / "vitrine")) / "eval"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recommend",
        help="evaluate a similar/complementary model against baselines",
        description='Prints {"model": {...}, "baselines": {"random", "popularity", "tfidf", "bm25", "minilm", '
        '"two_hop", "two_hop_tfidf"}, "pairs": N} with recall@10, recall@50, ndcg@10, mrr and coverage. '
        "The model runs its served path with exact instead of ANN search.",
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="exported model directory")
    parser.add_argument(
        "--dataset", required=True, metavar="KIND:PATH", help="bundlerec|amazon|jsonl|synthetic"
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="which pairs to evaluate on")
    parser.add_argument("--json", action="store_true", help="print only the JSON object (no table)")
    parser.add_argument(
        "--baselines",
        default="random,popularity,tfidf,bm25,minilm,two_hop,two_hop_tfidf",
        help="comma-separated subset (default: all)",
    )
    parser.add_argument(
        "--targets",
        type=int,
        default=0,
        help="complementary model: 0 (default, as served) searches every category; N > 0 replays the "
        "former gated design: the N most probable target categories of the mined prior, interleaved",
    )
    parser.add_argument(
        "--merge",
        choices=("score", "interleave"),
        default="score",
        help="complementary model: list order, by score (as served) or round-robin over categories",
    )
    parser.add_argument("--seed", type=int, default=0, help="tie-breaking and random baseline seed")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="MiniLM title vectors cache")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also write a Recall@k plot")
    parser.set_defaults(handler=run)


def _table(result: Any) -> str:
    from vitrine.eval.ranking import METRICS

    rows = [("model", result.model), *result.baselines.items()]
    lines = ["| ranker | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |" for name, m in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vitrine.data.datasets import load_dataset, parse_spec
    from vitrine.errors import ConfigError
    from vitrine.eval.recommend import evaluate
    from vitrine.model.inference import load_inference_model

    spec = parse_spec(args.dataset)
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    towers = load_inference_model(args.model)
    dataset = load_dataset(spec)
    try:
        result = evaluate(
            towers,
            towers.card,
            dataset,
            spec,
            args.task,
            baselines=baselines,
            targets_per_query=args.targets,
            merge=args.merge,
            seed=args.seed,
            cache_dir=args.cache_dir,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if args.plot is not None:
        from vitrine.eval.plots import plot_recall_curves

        title = f"{spec.label.rsplit('/', 1)[-1]} · {args.task} pairs ({result.mode}, {result.pairs} pairs)"
        plot_recall_curves(result.ranks, title, args.plot, model_label=f"model ({towers.task})")
    if not args.json:
        print(f"{spec.label} {args.task}: {result.pairs} pairs ({result.mode}); model {towers.model_version}")
        print(_table(result))
    print(json.dumps(result.to_json(), indent=None if args.json else 2))
    return 0
