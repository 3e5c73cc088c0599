"""Feature extraction: the vectorised extractor against the per-product loop it replaced (issue 18).

Both extract the same products in batches of --batch (default 256, the issue's figure), interleaved
over --rounds; CPU time and wall time per product, medians. The per-product loop is the library's
code of commit a02873d, kept under tests/support as the oracle of the identity test. Every batch's
features are compared field by field, and the model's ONNX item tower runs on both: the vectors
must be identical, bit for bit (target: ≥ 3x faster, identical vectors).

    .venv/bin/vitrine bench features -- --rounds 7
"""

from __future__ import annotations

from vitrine.threads import limit_native_threads

limit_native_threads(1)  # as the encoder service does, before numpy is imported

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import ensure_model, write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.features_reference import ReferenceFeatureExtractor  # noqa: E402

from vitrine.catalog.features import FeatureExtractor, Features  # noqa: E402
from vitrine.data.datasets import load_dataset  # noqa: E402
from vitrine.data.synthetic import SyntheticConfig, generate  # noqa: E402
from vitrine.model.inference import OUTPUT_NAME, load_inference_model  # noqa: E402


def timed(extract: object, batches: list) -> tuple[float, float, list[Features]]:
    out = []
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        out.append(extract(batch))  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--products", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--dataset",
        default="",
        help="also a dataset spec (e.g. bundlerec:../shared/data/products/bundlerec/clothing)",
    )
    args = parser.parse_args()

    model = load_inference_model(ensure_model(args.model), threads=1)
    products = list(
        generate(SyntheticConfig(n_products=args.products, n_sessions=10, n_baskets=10, seed=3)).products
    )
    if args.dataset:
        products += list(load_dataset(args.dataset).products)
    batches = [products[i : i + args.batch] for i in range(0, len(products), args.batch)]
    vectorised, reference = FeatureExtractor(model.features), ReferenceFeatureExtractor(model.features)

    rows = []
    identical = True
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        old_wall, old_cpu, old = timed(reference.extract, batches)
        new_wall, new_cpu, new = timed(vectorised.extract, batches)
        for a, b in zip(new, old, strict=True):
            for name, value in a.to_feeds().items():
                other = getattr(b, name)
                identical &= value.dtype == other.dtype and value.tobytes() == other.tobytes()
        n = len(products)
        rows.append(
            {
                "round": r,
                "load_average_1m": load,
                "reference_us_per_product": old_wall / n * 1e6,
                "vectorised_us_per_product": new_wall / n * 1e6,
                "reference_cpu_us_per_product": old_cpu / n * 1e6,
                "vectorised_cpu_us_per_product": new_cpu / n * 1e6,
            }
        )
        print(
            f"round {r}: load {load:.1f}  per product: loop {old_wall / n * 1e6:.1f} µs "
            f"({old_cpu / n * 1e6:.1f} CPU), vectorised {new_wall / n * 1e6:.1f} µs ({new_cpu / n * 1e6:.1f} CPU)",
            flush=True,
        )
    # the tower on both feature sets: identical features must give identical vectors
    names = [i.name for i in model._item.get_inputs()]
    same_vectors = True
    for a, b in zip(new, old, strict=True):
        va = model._item.run([OUTPUT_NAME], {k: v for k, v in a.to_feeds().items() if k in names})[0]
        vb = model._item.run([OUTPUT_NAME], {k: v for k, v in b.to_feeds().items() if k in names})[0]
        same_vectors &= np.asarray(va).tobytes() == np.asarray(vb).tobytes()

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    speedup = statistics.median(
        row["reference_us_per_product"] / row["vectorised_us_per_product"] for row in rows
    )
    cpu_speedup = statistics.median(
        row["reference_cpu_us_per_product"] / row["vectorised_cpu_us_per_product"] for row in rows
    )
    print(
        f"\nbatch {args.batch}, {len(products):,} products, medians over {args.rounds} rounds: loop "
        f"{median('reference_us_per_product'):.1f} µs, vectorised {median('vectorised_us_per_product'):.1f} µs "
        f"per product: {speedup:.2f}x faster ({cpu_speedup:.2f}x in CPU time; target ≥ 3x); identical "
        f"features: {identical}, identical vectors: {same_vectors}"
    )
    if not (identical and same_vectors):
        raise SystemExit("the vectorised extractor changed the features: the model would change")
    write_result(
        "features",
        {
            "products": len(products),
            "batch": args.batch,
            "dataset": args.dataset,
            "model": model.model_version,
            "rows": rows,
            "median_reference_us_per_product": median("reference_us_per_product"),
            "median_vectorised_us_per_product": median("vectorised_us_per_product"),
            "median_speedup": speedup,
            "median_cpu_speedup": cpu_speedup,
            "identical_features": identical,
            "identical_vectors": same_vectors,
            "target_speedup": 3.0,
        },
    )


if __name__ == "__main__":
    main()
