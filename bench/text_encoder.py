"""Text encoder throughput: torch eager vs onnxruntime fp32 vs onnxruntime int8 (dynamic quantisation).

Measures sentences per second at batch 1 and batch 64 (tokenisation included on every side), the
ratios to torch eager, and the embedding drift that int8 costs (cosine to the fp32 embeddings).
Writes bench/results/text_encoder.json and prints a table.

    .venv/bin/python bench/text_encoder.py --encoder minilm
    .venv/bin/python bench/text_encoder.py --encoder artifacts/nli/minilm-nli --out bench/results/x.json

Sentences are the English SICK trial sentences from ../shared/data (or $VITRINE_SHARED_DATA) when
present, otherwise generated product titles; the JSON records which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 64)


def sentences(n: int) -> tuple[list[str], str]:
    from vitrine.data.nli import load_nli

    shared = Path(os.environ.get("VITRINE_SHARED_DATA", REPO.parent / "shared" / "data"))
    sick = shared / "nli" / "en" / "sick"
    if sick.is_dir():
        pairs = load_nli("sick", sick, purpose="eval").pairs
        texts = sorted({t for p in pairs for t in (p.premise, p.hypothesis)})
        source = f"SICK trial sentences ({sick})"
    else:
        rng = random.Random(0)
        words = [
            "wireless",
            "steel",
            "cotton",
            "organic",
            "compact",
            "waterproof",
            "leather",
            "smart",
            "classic",
            "mini",
            "pro",
        ]
        things = [
            "headphones",
            "kettle",
            "t-shirt",
            "backpack",
            "lamp",
            "charger",
            "jacket",
            "watch",
            "blender",
            "speaker",
        ]
        texts = [
            f"{rng.choice(words)} {rng.choice(words)} {rng.choice(things)} {rng.randint(1, 99)}"
            for _ in range(n)
        ]
        source = "generated product titles"
    random.Random(1).shuffle(texts)
    return (texts * (n // len(texts) + 1))[:n], source


def throughput(fn: Callable[[list[str]], np.ndarray], texts: list[str], batch: int, seconds: float) -> float:
    """Sentences/s of `fn` over consecutive batches, for at least `seconds` after one warm-up batch."""
    fn(texts[:batch])
    done, start = 0, time.perf_counter()
    while True:
        for i in range(0, len(texts) - batch + 1, batch):
            fn(texts[i : i + batch])
            done += batch
            if time.perf_counter() - start >= seconds:
                return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="minilm", help="minilm, e5-small or a sentence-transformers dir")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "text_encoder.json")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads, both engines"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    parser.add_argument("--texts", type=int, default=512)
    args = parser.parse_args()

    import onnxruntime
    import torch

    from vitrine.text.embedder import TextEmbedder
    from vitrine.text.encoders import encode, load_sentence_encoder
    from vitrine.text.onnx_export import INT8_FILE, export_text_encoder, quantize_int8

    torch.set_num_threads(args.threads)
    texts, source = sentences(args.texts)
    model = load_sentence_encoder(args.encoder)
    model.max_seq_length = args.max_seq_length
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-") as tmp:
        export = export_text_encoder(model, Path(tmp) / "onnx", args.max_seq_length)
        quantize_int8(export)
        sizes = {p.name: p.stat().st_size for p in export.glob("*.onnx")}
        engines: dict[str, Callable[[list[str]], np.ndarray]] = {}

        def torch_eager(batch: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return encode(model, batch, "query", batch_size=len(batch))

        engines["torch eager fp32"] = torch_eager
        for name, file in (("onnxruntime fp32", "model.onnx"), ("onnxruntime int8", INT8_FILE)):
            embedder = TextEmbedder(export, file_name=file, batch_size=64, threads=args.threads)
            engines[name] = embedder.encode

        vectors = {name: fn(texts) for name, fn in engines.items()}
        results: dict[str, dict[str, float]] = {}
        for name, fn in engines.items():
            cosine = np.sum(vectors[name] * vectors["torch eager fp32"], axis=1)
            results[name] = {
                **{f"batch_{b}": throughput(fn, texts, b, args.seconds) for b in BATCHES},
                "cosine_to_torch_mean": float(cosine.mean()),
                "cosine_to_torch_min": float(cosine.min()),
            }
    eager = results["torch eager fp32"]
    for row in results.values():
        for b in BATCHES:
            row[f"ratio_batch_{b}"] = row[f"batch_{b}"] / eager[f"batch_{b}"]
    # What int8 costs: the int8 graph against the fp32 graph it was quantised from.
    drift = np.sum(vectors["onnxruntime int8"] * vectors["onnxruntime fp32"], axis=1)
    record = {
        "encoder": args.encoder,
        "texts": len(texts),
        "text_source": source,
        "max_seq_length": args.max_seq_length,
        "threads": args.threads,
        "seconds_per_measurement": args.seconds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "onnx_bytes": sizes,
        "results": results,
        "int8_drift": {
            "cosine_mean": float(drift.mean()),
            "cosine_min": float(drift.min()),
            "cosine_p01": float(np.quantile(drift, 0.01)),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"{args.encoder}, max_seq_length {args.max_seq_length}, {args.threads} threads, {source}")
    print(
        f"{'engine':<18} {'b=1 sent/s':>11} {'ratio':>6} {'b=64 sent/s':>12} {'ratio':>6} {'cos mean':>9} {'cos min':>8}"
    )
    for name, row in results.items():
        print(
            f"{name:<18} {row['batch_1']:>11.1f} {row['ratio_batch_1']:>6.2f} {row['batch_64']:>12.1f} "
            f"{row['ratio_batch_64']:>6.2f} {row['cosine_to_torch_mean']:>9.5f} {row['cosine_to_torch_min']:>8.5f}"
        )
    d = record["int8_drift"]
    print(f"int8 drift vs onnxruntime fp32: cosine mean {d['cosine_mean']:.5f}, min {d['cosine_min']:.5f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
