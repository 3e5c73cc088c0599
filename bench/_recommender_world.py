"""The recommender benchmark's world: N synthetic products encoded by the real models into one Qdrant
Edge shard per model, built once into a cache folder and reused (a 1M-item build takes a while).

    artifacts/bench/recommender/<N>/catalog.npz          leaf category and stock flag per product
    artifacts/bench/recommender/<N>/<model>/shard/        the Edge shard (HNSW built, payload indexes)
    artifacts/bench/recommender/<N>/<model>/done.json     written last: the build is complete
    artifacts/bench/recommender/<N>/<model>-scan/         the same with the earlier index layout
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrine.catalog.schema import Product
from vitrine.data.synthetic import SyntheticConfig, leaves, make_product
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.layout import PAYLOAD_FIELDS, PayloadField
from vitrine.model.inference import InferenceModel
from vitrine.stream.pipeline import encode_products

LEAVES = [leaf for _, _, leaf in leaves()]
CHUNK = 8192
SEED = 2026


def product_id(i: int) -> str:
    return f"p{i:07d}"


def iter_products(n: int, seed: int = SEED) -> Iterator[Product]:
    """The synthetic catalogue's products, generated one by one (a 1M list would not be needed)."""
    import random

    from vitrine.catalog.schema import Availability

    config = SyntheticConfig(n_products=max(n, len(LEAVES)), seed=seed)
    rng = random.Random(seed)
    all_leaves = leaves()
    for i in range(n):
        d, s, leaf = all_leaves[i] if i < len(all_leaves) else rng.choice(all_leaves)
        p = replace(make_product(rng, i, d, s, leaf), product_id=product_id(i))
        if rng.random() < config.out_of_stock_rate:
            p = replace(p, availability=Availability.OUT_OF_STOCK)
        yield p


def catalog(cache: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(leaf index, in stock) per product, generating the catalogue once."""
    path = cache / "catalog.npz"
    if path.is_file():
        data = np.load(path)
        if len(data["leaf"]) == n:
            return data["leaf"], data["in_stock"]
    leaf = np.zeros(n, dtype=np.int16)
    in_stock = np.zeros(n, dtype=bool)
    for i, p in enumerate(tqdm(iter_products(n), total=n, desc="catalogue", unit="item", mininterval=2)):
        leaf[i] = LEAVES.index(p.leaf_category)
        in_stock[i] = p.availability.purchasable
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, leaf=leaf, in_stock=in_stock)
    return leaf, in_stock


LAYOUTS = ("graph", "scan")  # vitrine's index layout; the earlier one (see vitrine.index.layout)


def scan_layout() -> tuple[dict[str, PayloadField], int]:
    """The layout before graph links were chosen per field (Qdrant's defaults: links on every field,
    a 10 MB full-scan threshold = 40k points at dim 64): kept for the side-by-side benchmark."""
    return {name: PayloadField(spec.kind, graph=True) for name, spec in PAYLOAD_FIELDS.items()}, 40_000


def index_config(path: Path, dim: int, layout: str, fresh: bool = False) -> EdgeIndexConfig:
    if layout == "graph":
        return EdgeIndexConfig(path, dim, fresh=fresh)
    fields, full_scan_points = scan_layout()
    return EdgeIndexConfig(path, dim, fresh=fresh, full_scan_points=full_scan_points, payload_fields=fields)


def index_layout(layout: str) -> str:
    """What a cached shard was built with; a shard of another layout is rebuilt."""
    config = index_config(Path(), 1, layout)
    graph = ",".join(name for name, spec in config.payload_fields.items() if spec.graph)
    return f"full_scan_points={config.full_scan_points};graph={graph}"


def shard_folder(cache: Path, name: str, layout: str) -> Path:
    return cache / (name if layout == "graph" else f"{name}-{layout}")


def ensure_shard(
    cache: Path, name: str, model: InferenceModel, n: int, layout: str = "graph"
) -> dict[str, object]:
    """Build the model's shard unless a complete one for the same model, size and layout is cached."""
    folder = shard_folder(cache, name, layout)
    marker = folder / "done.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if (
            done.get("items") == n
            and done.get("model_version") == model.model_version
            and done.get("index_layout") == index_layout(layout)
        ):
            print(f"{name}: reusing the cached shard ({n:,} items, built in {done['build_s']:.0f}s)")
            return done  # type: ignore[no-any-return]
    index = EdgeIndex(index_config(folder / "shard", model.dim, layout, fresh=True))
    started = time.perf_counter()
    encode_s = 0.0
    try:
        batch: list[Product] = []
        bar = tqdm(total=n, desc=f"{name}: encode + index", unit="item", mininterval=2)
        for p in iter_products(n):
            batch.append(p)
            if len(batch) == CHUNK:
                encode_s += _write(index, model, batch)
                bar.update(len(batch))
                batch = []
        if batch:
            encode_s += _write(index, model, batch)
            bar.update(len(batch))
        bar.close()
        print(f"{name}: building the HNSW graph (blocking; minutes for 1M items)...", flush=True)
        optimize_started = time.perf_counter()
        index.optimize()
        optimize_s = time.perf_counter() - optimize_started
        count = index.count()
    finally:
        index.close()
    done = {
        "items": n,
        "count": count,
        "index_layout": index_layout(layout),
        "model_version": model.model_version,
        "dim": model.dim,
        "build_s": time.perf_counter() - started,
        "encode_s": encode_s,
        "optimize_s": optimize_s,
    }
    marker.write_text(json.dumps(done, indent=2) + "\n")
    return done


def _write(index: EdgeIndex, model: InferenceModel, products: list[Product]) -> float:
    started = time.perf_counter()
    items = encode_products(model, products)
    encode_s = time.perf_counter() - started
    index.apply(items)
    return encode_s


def open_shard(cache: Path, name: str, dim: int, layout: str = "graph") -> EdgeIndex:
    folder = shard_folder(cache, name, layout)
    if not (folder / "done.json").is_file():
        raise SystemExit(f"no complete shard at {folder}: run bench/recommender.py to build it")
    return EdgeIndex(index_config(folder / "shard", dim, layout))
