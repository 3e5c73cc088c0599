"""Item tower throughput: torch eager vs onnxruntime, at batch 1, 64 and 512, for each text branch.

Products → vectors, end to end as the encoder service runs it: feature extraction (and, for the
`sentence` branch, the MiniLM sentence encoder: sentence-transformers in torch, `TextEmbedder` in
onnxruntime) plus the tower. The tower alone (features precomputed) is measured too, since feature
extraction is shared by both runtimes. Prints items/s and onnxruntime/torch ratios, writes
bench/results/item_tower.json.

    .venv/bin/python bench/item_tower.py                       # both branches, untrained models
    .venv/bin/python bench/item_tower.py --branches hashed --threads 2
    .venv/bin/python bench/item_tower.py --branches hashed --members 1,4   # one tower vs an ensemble

Models are built untrained (random tables, same shapes as trained ones: throughput does not depend on
the weights) and exported into a temporary directory; pass --model DIR to measure a real model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

BATCHES = (1, 64, 512)


def items_per_second(fn: Callable[[], Any], batch: int, min_seconds: float, min_repeats: int) -> float:
    fn()  # warm-up (first-call allocations, lazy init)
    repeats, start = 0, time.perf_counter()
    while repeats < min_repeats or time.perf_counter() - start < min_seconds:
        fn()
        repeats += 1
    return batch * repeats / (time.perf_counter() - start)


def build_model(branch: str, out: Path, dataset: str, members: int = 1) -> Path:
    from vitrine.catalog.features import FeatureConfig
    from vitrine.data.datasets import load_dataset, parse_specs
    from vitrine.model.artifacts import load_task
    from vitrine.model.config import EncoderConfig, TrainConfig
    from vitrine.model.export import export_model
    from vitrine.model.pipeline import TrainingSetup, run_training
    from vitrine.model.text_branch import encoder_dimension, load_text_encoder

    features = FeatureConfig()
    if branch == "sentence":
        dim = encoder_dimension(load_text_encoder("minilm"))
        features = FeatureConfig(text_branch="sentence", sentence_encoder="minilm", sentence_dim=dim)
    setup = TrainingSetup(
        specs=tuple(parse_specs(dataset)),
        train=TrainConfig(),
        features=features,
        encoder=EncoderConfig(members=members),
        untrained=True,
        progress=False,
    )
    run_training(setup, out)
    card, task = load_task(out)
    card.export = export_model(card, task, load_dataset(dataset).products, out)
    card.files.update(card.export["files"])
    card.save(out)
    return out


def measure(model_dir: Path, products: Sequence[Any], threads: int, min_seconds: float) -> dict[str, Any]:
    import torch

    from vitrine.catalog.features import FeatureConfig, FeatureExtractor
    from vitrine.model.artifacts import load_task
    from vitrine.model.inference import load_inference_model
    from vitrine.model.text_branch import encode_texts, load_text_encoder
    from vitrine.model.train import feature_tensors

    torch.set_num_threads(threads)
    card, task = load_task(model_dir)
    features = FeatureConfig.from_dict(card.features)
    extractor = FeatureExtractor(features)
    serving = load_inference_model(model_dir, threads=threads)
    sentence = features.text_branch == "sentence"
    st_model = load_text_encoder(features.sentence_encoder) if sentence else None
    if st_model is not None:
        st_model.to("cpu")

    def torch_end_to_end(batch: Sequence[Any]) -> np.ndarray:
        with torch.no_grad():
            text_vec = (
                encode_texts(st_model, [extractor.sentence_text(p) for p in batch]) if sentence else None
            )
            return task.item_vectors(feature_tensors(extractor.extract(batch), text_vec)).numpy()

    rows = []
    for size in BATCHES:
        batch = [products[i % len(products)] for i in range(size)]
        # tower only: the same precomputed inputs for both runtimes
        text_vec = encode_texts(st_model, [extractor.sentence_text(p) for p in batch]) if sentence else None
        tensors = feature_tensors(extractor.extract(batch), text_vec)
        names = card.export["inputs"]
        feeds = {name: tensors[name].numpy() for name in names}
        session = serving._item  # the serving model's own onnxruntime session

        def torch_tower(t: dict[str, Any] = tensors) -> None:
            with torch.no_grad():
                task.item_vectors(t)

        def ort_tower(f: dict[str, Any] = feeds, s: Any = session) -> None:
            s.run(["vector"], f)

        repeats = 3 if size == 512 else 10
        row = {
            "batch": size,
            "tower_torch_items_s": items_per_second(torch_tower, size, min_seconds, repeats),
            "tower_onnxruntime_items_s": items_per_second(ort_tower, size, min_seconds, repeats),
            "e2e_torch_items_s": items_per_second(
                lambda b=batch: torch_end_to_end(b), size, min_seconds, repeats
            ),
            "e2e_onnxruntime_items_s": items_per_second(
                lambda b=batch: serving.encode_items(b), size, min_seconds, repeats
            ),
        }
        row["tower_ratio"] = row["tower_onnxruntime_items_s"] / row["tower_torch_items_s"]
        row["e2e_ratio"] = row["e2e_onnxruntime_items_s"] / row["e2e_torch_items_s"]
        rows.append(row)
        print(f"  batch {size}: done", file=sys.stderr)
    return {"model_version": card.model_version, "text_branch": features.text_branch, "rows": rows}


def print_table(results: dict[str, Any]) -> None:
    print(
        "\n| branch | batch | tower torch | tower onnxruntime | ratio | end-to-end torch | end-to-end onnxruntime | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for branch, result in results.items():
        for r in result["rows"]:
            print(
                f"| {branch} | {r['batch']} | {r['tower_torch_items_s']:,.0f} | {r['tower_onnxruntime_items_s']:,.0f} "
                f"| {r['tower_ratio']:.2f}x | {r['e2e_torch_items_s']:,.0f} | {r['e2e_onnxruntime_items_s']:,.0f} "
                f"| {r['e2e_ratio']:.2f}x |"
            )
    print("items/s; ratio = onnxruntime / torch eager (higher = onnxruntime faster)")


def print_member_ratios(results: dict[str, Any]) -> None:
    """An ensemble's onnxruntime rates against its branch's one-tower model of the same run."""
    for name, result in results.items():
        base = results.get(name.split(",")[0])
        if "members" not in name or base is None:
            continue
        for r, b in zip(result["rows"], base["rows"], strict=True):
            print(
                f"{name}, batch {r['batch']}: tower {r['tower_onnxruntime_items_s'] / b['tower_onnxruntime_items_s']:.2f}x, "
                f"end to end {r['e2e_onnxruntime_items_s'] / b['e2e_onnxruntime_items_s']:.2f}x the one-tower rate"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--branches", default="hashed,sentence", help="text branches to measure")
    parser.add_argument("--model", type=Path, default=None, help="measure this exported model (one branch)")
    parser.add_argument("--dataset", default="synthetic:2000", help="products to encode (KIND:PATH)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum timing per measurement")
    parser.add_argument(
        "--members", default="1", help="ensemble sizes to measure, e.g. 1,4 (vitrine.model.ensemble)"
    )
    parser.add_argument("--out", default="item_tower", help="result name under bench/results/")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vitrine.data.datasets import load_dataset

    products = load_dataset(args.dataset).products
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-") as tmp:
        if args.model is not None:
            result = measure(args.model, products, args.threads, args.min_seconds)
            results[result["text_branch"]] = result
        else:
            sizes = [int(m) for m in args.members.split(",") if m.strip()]
            for branch in [b.strip() for b in args.branches.split(",") if b.strip()]:
                for members in sizes:
                    name = branch if members == 1 else f"{branch}, {members} members"
                    print(f"{name}: building and exporting an untrained model", file=sys.stderr)
                    model_dir = build_model(branch, Path(tmp) / f"{branch}-{members}", args.dataset, members)
                    results[name] = measure(model_dir, products, args.threads, args.min_seconds)
    print_table(results)
    print_member_ratios(results)
    write_result(
        args.out,
        {
            "dataset": args.dataset,
            "threads": args.threads,
            "load_average_at_end": os.getloadavg(),
            "batches": list(BATCHES),
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
