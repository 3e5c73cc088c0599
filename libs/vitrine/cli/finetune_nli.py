"""`vitrine finetune-nli`: contrastive NLI fine-tuning of a sentence encoder (see vitrine.text.nli_finetune)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vitrine.errors import ConfigError

# --quick: a handful of steps, for tests and smoke runs.
QUICK = {"max_examples": 48, "batch_size": 8, "epochs": 1, "max_seq_length": 32}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "finetune-nli",
        help="fine-tune a sentence encoder on NLI pairs (MultipleNegativesRankingLoss)",
        description="Fine-tune a sentence encoder on NLI data: entailed pairs are positives, "
        "contradictions hard negatives. Writes a sentence-transformers model with a model card.",
    )
    parser.add_argument(
        "--base", required=True, help="minilm, e5-small, or a sentence-transformers directory"
    )
    parser.add_argument(
        "--nli",
        required=True,
        help="KIND:PATH[,KIND:PATH...]; KIND one of sick, snli, cdsc, ppc; PATH a file, or a folder "
        "(its train split, or dev where it has none)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default: %(default)s)")
    parser.add_argument(
        "--max-seq-length", type=int, default=64, help="tokens per sentence (default: %(default)s)"
    )
    parser.add_argument(
        "--max-examples", type=int, default=None, help="cap on training examples (default: all)"
    )
    parser.add_argument("--scale", type=float, default=20.0, help="similarity scale = 1/temperature")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--train-embeddings",
        action="store_true",
        help="also train the token-embedding matrix (frozen by default)",
    )
    parser.add_argument("--quick", action="store_true", help=f"tiny run for smoke tests: {QUICK}")
    parser.add_argument("--onnx", action="store_true", help="also export the result to OUT/onnx")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def parse_sources(value: str) -> tuple[tuple[str, str], ...]:
    from vitrine.data.nli import parse_spec

    specs = [s.strip() for s in value.split(",") if s.strip()]
    if not specs:
        raise ConfigError("--nli needs at least one KIND:PATH")
    return tuple((kind, str(path)) for kind, path in (parse_spec(s) for s in specs))


def build_config(args: argparse.Namespace) -> Any:
    from vitrine.text.nli_finetune import FinetuneConfig

    values: dict[str, Any] = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "max_seq_length": args.max_seq_length,
        "max_examples": args.max_examples,
        "scale": args.scale,
        "seed": args.seed,
        "freeze_embeddings": not args.train_embeddings,
    }
    if args.quick:
        values.update(QUICK)
    return FinetuneConfig(base=args.base, nli=parse_sources(args.nli), out=args.out, **values)


def run(args: argparse.Namespace) -> int:
    from vitrine.text.nli_finetune import finetune

    config = build_config(args)
    result = finetune(config, progress=not args.no_progress)
    summary: dict[str, Any] = {
        "out": str(result.out),
        "examples": result.examples,
        "triplets": result.triplets,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "final_loss": round(result.final_loss, 4),
    }
    if args.onnx:
        from vitrine.text.onnx_export import export_text_encoder

        summary["onnx"] = str(
            export_text_encoder(str(result.out), result.out / "onnx", config.max_seq_length)
        )
    print(json.dumps(summary))
    return 0
