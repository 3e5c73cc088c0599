"""`vitrine eval retrieval`: ndcg@10, mrr@10, recall@100, alignment and uniformity of a sentence encoder.

`--json` prints exactly `{"metrics": {...}, "queries": N}`; `--save FILE` also writes that record with
the encoder, dataset and timing, for reports (vitrine.text.nli_report).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

METRIC_ORDER = ("ndcg@10", "mrr@10", "recall@100", "alignment", "uniformity")


def register(eval_subparsers: Any) -> None:
    parser: argparse.ArgumentParser = eval_subparsers.add_parser(
        "retrieval",
        help="retrieval quality and embedding geometry of a sentence encoder",
        description="Rank a corpus for every query with a sentence encoder and report ndcg@10, mrr@10, "
        "recall@100, alignment and uniformity.",
    )
    parser.add_argument(
        "--encoder", required=True, help="minilm, e5-small, or a sentence-transformers directory"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="KIND:PATH; beir (folder or qrels file), cranfield (folder), or an NLI kind read as retrieval: "
        "sick, snli, cdsc, ppc (a file, or a folder: its dev split)",
    )
    parser.add_argument(
        "--max-seq-length", type=int, default=256, help="tokens per text (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit-queries", type=int, default=None, help="evaluate only the first N queries")
    parser.add_argument("--json", action="store_true", help='print {"metrics": {...}, "queries": N}')
    parser.add_argument("--save", type=Path, default=None, help="also write the result with metadata here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vitrine.data.nli import parse_spec
    from vitrine.data.retrieval import DATASET_KINDS, load_dataset
    from vitrine.errors import ConfigError
    from vitrine.eval.retrieval import evaluate_encoder
    from vitrine.text.encoders import load_sentence_encoder

    if args.max_seq_length < 1 or args.batch_size < 1:
        raise ConfigError("--max-seq-length and --batch-size must be >= 1")
    kind, path = parse_spec(args.dataset, DATASET_KINDS)
    rset = load_dataset(kind, path)
    if args.limit_queries is not None:
        if args.limit_queries < 1:
            raise ConfigError("--limit-queries must be >= 1")
        rset = rset.limit_queries(args.limit_queries)
    model = load_sentence_encoder(args.encoder)
    model.max_seq_length = args.max_seq_length
    start = time.perf_counter()
    metrics = evaluate_encoder(model, rset, args.batch_size, show_progress=not args.no_progress)
    seconds = time.perf_counter() - start
    result = {"metrics": {k: metrics[k] for k in METRIC_ORDER}, "queries": len(rset.evaluated_query_ids())}
    if args.save is not None:
        record = {
            **result,
            "encoder": args.encoder,
            "dataset": args.dataset,
            "documents": len(rset.corpus),
            "max_seq_length": args.max_seq_length,
            "limit_queries": args.limit_queries,
            "seconds": round(seconds, 1),
        }
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.encoder} on {args.dataset}: {result['queries']} queries, {len(rset.corpus)} documents")
        for name in METRIC_ORDER:
            print(f"  {name:<11} {metrics[name]:.4f}")
    return 0
