"""`vitrine export`: write the ONNX item tower (+ complementary query tower) into the model directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export a trained model's towers to ONNX (with a torch/onnxruntime parity check)",
        description="Write DIR/item_tower.onnx (and DIR/query_tower_complementary.onnx) and record "
        "the parity check in DIR/model.json.",
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="model directory")
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="KIND:PATH",
        help="products for the parity check (default: the model's first training dataset)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vitrine.data.datasets import load_dataset
    from vitrine.errors import ConfigError
    from vitrine.model.artifacts import load_task
    from vitrine.model.export import export_model

    card, task = load_task(args.model)
    spec = args.dataset
    if spec is None:
        datasets = card.data.get("datasets") or []
        if not datasets:
            raise ConfigError("the model card names no dataset; pass --dataset for the parity check")
        first = datasets[0]
        kind = first["spec"].split(":", 1)[0]
        spec = f"{kind}:{first['path']}"
    products = load_dataset(spec).products
    record = export_model(card, task, products, args.model)
    card.export = record
    card.files.update(record["files"])
    card.save(args.model)
    print(json.dumps({"model_dir": str(args.model), "model_version": card.model_version, **record}, indent=2))
    return 0
