"""`vitrine eval intent`: free-text intents → products, served Inspire(intent) against four baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BASELINES = "bm25,minilm,e5,item_tower_as_title,intent_tower_alone"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "intent",
        help="evaluate Inspire(intent=...) on held-out bundle intents against baselines",
        description='Prints {"model": {...}, "baselines": {"bm25", "minilm", "e5", "item_tower_as_title"}, '
        '"queries": N} with recall@10, recall@50, ndcg@10 and mrr of the served lists (50 items, exact search).',
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="exported model directory")
    parser.add_argument("--dataset", required=True, metavar="KIND:PATH", help="a dataset with bundle intents")
    parser.add_argument("--json", action="store_true", help="print only the JSON object (no table)")
    parser.add_argument("--baselines", default=BASELINES, help="comma-separated subset (default: all)")
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="on the intent tower's own dataset: which held-out intents (val is for choosing defaults)",
    )
    parser.add_argument(
        "--strategy",
        choices=("clusters", "mmr"),
        default=None,
        help="Inspire's strategy (default: the API's for an intent, its nearest items = mmr at diversity 0)",
    )
    parser.add_argument(
        "--clusters", type=int, default=None, help="nearest clusters searched (API default 3)"
    )
    parser.add_argument(
        "--mmr-diversity",
        type=float,
        default=None,
        help="MMR diversity (API default: 0.5 with --strategy mmr, else 0)",
    )
    parser.add_argument(
        "--rerank-depth",
        type=int,
        default=None,
        help="override the intent tower's re-scoring depth (for choosing it on --split val)",
    )
    parser.add_argument(
        "--lexical-weight",
        type=float,
        default=None,
        help="override the intent tower's re-scoring TF-IDF weight (0 = the tower alone)",
    )
    parser.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="NAME=ENCODER",
        help="a further zero-shot baseline: minilm | e5-small | a sentence-transformers directory "
        "(e.g. an NLI-tuned one); repeatable",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="sentence-vector cache")
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="PNG", help="the metrics per ranker, as bars"
    )
    parser.set_defaults(handler=run)


def table(result: Any, metrics: tuple[str, ...]) -> str:
    model_label = "model (intent tower)" if result.intent_tower else "model (no intent tower: fallback)"
    rows = [(model_label, result.model), *result.baselines.items()]
    lines = ["| ranker | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in metrics) + " |" for name, m in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vitrine.api.requests import RequestLimits
    from vitrine.data.datasets import load_dataset, parse_spec
    from vitrine.errors import ConfigError
    from vitrine.eval.intent import IntentKnobs, evaluate_intents
    from vitrine.eval.lists import RELEVANCE_METRICS
    from vitrine.model.card import read_card
    from vitrine.model.inference import load_inference_model
    from vitrine.model.intent_serving import IntentRescoring
    from vitrine.serving.inspire import Strategy
    from vitrine.text.cache import DEFAULT_CACHE

    spec = parse_spec(args.dataset)
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    knobs = IntentKnobs()  # what the API serves an intent that sets no diversity
    if args.strategy is not None:  # as the API reads an explicit strategy
        limits = RequestLimits()
        knobs = replace(knobs, strategy=Strategy(args.strategy), mmr_diversity=limits.default_mmr_diversity)
    if args.clusters is not None:
        knobs = replace(knobs, nearest_clusters=args.clusters)
    if args.mmr_diversity is not None:
        knobs = replace(knobs, mmr_diversity=args.mmr_diversity)
    extra = {}
    for entry in args.encoder:
        name, sep, encoder = entry.partition("=")
        if not sep or not name.strip() or not encoder.strip():
            raise ConfigError(f"--encoder must look like NAME=ENCODER, got {entry!r}")
        extra[name.strip()] = encoder.strip()
    rescoring: bool | IntentRescoring = True
    if args.rerank_depth is not None or args.lexical_weight is not None:
        record = read_card(args.model).intent.get("rescoring") or IntentRescoring().to_dict()
        try:
            rescoring = IntentRescoring.from_dict(record).overridden(args.rerank_depth, args.lexical_weight)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    model = load_inference_model(args.model, intent_rescoring=rescoring)
    fallback = load_inference_model(args.model, intent_tower=False)
    tower_alone = (
        load_inference_model(args.model, intent_rescoring=False)
        if "intent_tower_alone" in baselines
        else None
    )
    try:
        result = evaluate_intents(
            model,
            fallback,
            load_dataset(spec),
            spec,
            baselines=baselines,
            split=args.split,
            knobs=knobs,
            cache_dir=args.cache_dir or DEFAULT_CACHE,
            extra_encoders=extra,
            tower_alone=tower_alone,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not args.json:
        print(f"{spec.label}: {result.queries} intents ({result.mode}); model {model.model_version}")
        print(table(result, RELEVANCE_METRICS))
    if args.plot is not None:
        from vitrine.eval.plots import plot_metric_bars

        rows = {"served intent path": result.model, **result.baselines}
        title = f"Free-text intents: {spec.label.split('/')[-1]}, {result.queries} intents ({result.mode})"
        plot_metric_bars(rows, RELEVANCE_METRICS, title, args.plot)
    print(json.dumps(result.to_json(), indent=None if args.json else 2))
    return 0
