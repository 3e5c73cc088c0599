"""The feature extraction of commit a02873d, kept verbatim as the oracle for the vectorised extractor.

Every trained model's ONNX tower expects exactly these ids and weights: `vitrine.catalog.features`
must reproduce them bit for bit (tests/unit/catalog/test_features_identical.py). This is the
per-product loop the library ran before issue 18 (one dict per product, one CRC-32 call per token);
it is not used by the library.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np

from vitrine.catalog.features import FeatureConfig, Features
from vitrine.catalog.schema import Product

_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]")


def normalise_text(text: str) -> str:
    """vitrine.catalog.schema.normalise_text as of a02873d (the library's has an ASCII fast path)."""
    folded = text.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", _NON_WORD.sub(" ", folded)).strip()


def stable_bucket(key: str, buckets: int) -> int:
    return 1 + zlib.crc32(key.encode("utf-8")) % (buckets - 1)


class ReferenceFeatureExtractor:
    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._log_step = math.log1p(config.price_max) / (config.price_buckets - 2)

    def text_tokens(self, product: Product) -> dict[str, float]:
        cfg = self.config
        weights: dict[str, float] = {}
        words = normalise_text(product.title).split()[: cfg.max_title_words]
        for word in words:
            weights["w:" + word] = weights.get("w:" + word, 0.0) + 1.0
            padded = f"<{word}>"
            for n in cfg.char_ngrams:
                for i in range(max(1, len(padded) - n + 1)):
                    key = "c:" + padded[i : i + n]
                    weights[key] = weights.get(key, 0.0) + 1.0
        if cfg.word_bigrams:
            for a, b in itertools.pairwise(words):
                key = f"b:{a} {b}"
                weights[key] = weights.get(key, 0.0) + 1.0
        if cfg.max_description_words > 0 and product.description:
            for word in normalise_text(product.description).split()[: cfg.max_description_words]:
                key = "d:" + word
                weights[key] = weights.get(key, 0.0) + cfg.description_weight
        return weights

    def category_ids(self, path: Sequence[str]) -> list[int]:
        cfg = self.config
        names = [normalise_text(p) for p in path if p.strip()]
        ids = [
            stable_bucket("p:" + " > ".join(names[: i + 1]), cfg.category_buckets) for i in range(len(names))
        ]
        if len(ids) > cfg.max_category_levels:
            ids = ids[: cfg.max_category_levels - 1] + ids[-1:]
        return ids

    def leaf_category_id(self, leaf: str) -> int:
        name = normalise_text(leaf)
        return stable_bucket("l:" + name, self.config.category_buckets) if name else 0

    def price_bucket(self, price: float | None) -> int:
        if price is None or not math.isfinite(price) or price < 0:
            return 0
        bucket = int(math.log1p(price) / self._log_step)
        return 1 + min(bucket, self.config.price_buckets - 2)

    def brand_id(self, brand: str) -> int:
        name = normalise_text(brand)
        return stable_bucket("br:" + name, self.config.brand_buckets) if name else 0

    def seller_id(self, seller: str) -> int:
        name = seller.strip().casefold()
        return stable_bucket("se:" + name, self.config.seller_buckets) if name else 0

    def extract(self, products: Sequence[Product]) -> Features:
        cfg = self.config
        n = len(products)
        bags: list[tuple[list[int], list[float]]] = []
        if cfg.uses_hashed:  # i12 added "hashed+sentence", which hashes the same bag
            for product in products:
                merged: dict[int, float] = {}
                for key, weight in self.text_tokens(product).items():
                    bucket = stable_bucket(key, cfg.text_buckets)
                    merged[bucket] = merged.get(bucket, 0.0) + weight
                items = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.max_text_tokens]
                norm = math.sqrt(sum(w * w for _, w in items)) or 1.0
                bags.append(([b for b, _ in items], [w / norm for _, w in items]))
        width = max((len(ids) for ids, _ in bags), default=0) or 1
        text_ids = np.zeros((n, width), dtype=np.int64)
        text_weights = np.zeros((n, width), dtype=np.float32)
        for row, (ids, ws) in enumerate(bags):
            text_ids[row, : len(ids)] = ids
            text_weights[row, : len(ws)] = ws

        category_ids = np.zeros((n, cfg.max_category_levels), dtype=np.int64)
        for row, product in enumerate(products):
            ids = self.category_ids(product.category_path)
            category_ids[row, : len(ids)] = ids
        return Features(
            text_ids=text_ids,
            text_weights=text_weights,
            category_ids=category_ids,
            leaf_id=np.array([self.leaf_category_id(p.leaf_category) for p in products], dtype=np.int64),
            price_bucket=np.array([self.price_bucket(p.price) for p in products], dtype=np.int64),
            brand_id=np.array([self.brand_id(p.brand) for p in products], dtype=np.int64),
            seller_id=np.array([self.seller_id(p.seller) for p in products], dtype=np.int64),
        )
