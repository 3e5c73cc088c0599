"""Feature extraction for the Product Encoder: `Product` → integer ids and weights (numpy only).

Training and serving both call `FeatureExtractor.extract`, configured by the `FeatureConfig` stored in
the model directory, so the ONNX towers always see exactly the features they were trained on. Every
vocabulary is a hash (CRC-32, stable across processes and platforms) into a fixed number of buckets:
unseen words, brands and sellers still get an id, and no vocabulary file has to be shipped. Id 0 is
reserved for padding / missing in every table.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from vitrine.catalog.schema import Product, normalise_text

TEXT_BRANCHES = ("hashed", "sentence", "hashed+sentence")


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """How products become feature ids. Changing any field changes the features: store it with the model."""

    text_branch: str = "hashed"
    text_buckets: int = 1 << 17
    char_ngrams: tuple[int, ...] = (3,)
    word_bigrams: bool = True
    max_title_words: int = 32
    # Description words join the bag with a lower weight: some catalogues (Amazon magazines) have
    # unusable titles and all their content in the description.
    max_description_words: int = 48
    description_weight: float = 0.5
    max_text_tokens: int = 256
    category_buckets: int = 1 << 14
    max_category_levels: int = 8
    price_buckets: int = 24
    price_max: float = 10_000.0
    brand_buckets: int = 1 << 14
    seller_buckets: int = 1 << 10
    # sentence branches only: the encoder, its output size, and whether it reads the category path
    # and description after the title (else the title alone)
    sentence_encoder: str = ""
    sentence_dim: int = 0
    sentence_context: bool = False

    def __post_init__(self) -> None:
        if self.text_branch not in TEXT_BRANCHES:
            raise ValueError(f"text_branch must be one of {TEXT_BRANCHES}, got {self.text_branch!r}")
        for name in ("text_buckets", "category_buckets", "brand_buckets", "seller_buckets"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")
        if self.price_buckets < 3:
            raise ValueError(f"price_buckets must be at least 3, got {self.price_buckets}")
        if self.max_text_tokens < 1 or self.max_category_levels < 1:
            raise ValueError("max_text_tokens and max_category_levels must be positive")
        if any(n < 1 for n in self.char_ngrams):
            raise ValueError(f"char_ngrams must be positive sizes, got {self.char_ngrams}")

    @property
    def uses_hashed(self) -> bool:
        return self.text_branch in ("hashed", "hashed+sentence")

    @property
    def uses_sentence(self) -> bool:
        return self.text_branch in ("sentence", "hashed+sentence")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["char_ngrams"] = list(self.char_ngrams)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FeatureConfig fields {sorted(unknown)}; allowed: {sorted(known)}")
        values = dict(data)
        if "char_ngrams" in values:
            values["char_ngrams"] = tuple(values["char_ngrams"])
        return cls(**values)


def stable_bucket(key: str, buckets: int) -> int:
    """A bucket in [1, buckets): 0 stays free for padding / missing values."""
    return 1 + zlib.crc32(key.encode("utf-8")) % (buckets - 1)


@dataclass(frozen=True, slots=True)
class Features:
    """A batch of product features; the field names are the ONNX item tower's input names."""

    text_ids: np.ndarray  # int64 [n, L]; 0 = padding (hashed branch; L = 1 and all 0 otherwise)
    text_weights: np.ndarray  # float32 [n, L]
    category_ids: np.ndarray  # int64 [n, max_category_levels]; one id per path prefix, 0 = none
    leaf_id: np.ndarray  # int64 [n]
    price_bucket: np.ndarray  # int64 [n]; 0 = no price
    brand_id: np.ndarray  # int64 [n]
    seller_id: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return int(self.leaf_id.shape[0])

    def to_feeds(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def select(self, index: np.ndarray | Sequence[int]) -> Features:
        idx = np.asarray(index, dtype=np.int64)
        return Features(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


class FeatureExtractor:
    """Turns products into `Features` with one fixed `FeatureConfig`. Stateless apart from the config."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._log_step = math.log1p(config.price_max) / (config.price_buckets - 2)

    # --- single fields -------------------------------------------------------------------------
    def text_tokens(self, product: Product) -> dict[str, float]:
        """Hashed-bag tokens with their weights: words, word bigrams, char n-grams, description words."""
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
        """One id per path prefix (root, root>sub, ...) in the shared category table; deeper levels fold."""
        cfg = self.config
        names = [normalise_text(p) for p in path if p.strip()]
        ids = [
            stable_bucket("p:" + " > ".join(names[: i + 1]), cfg.category_buckets) for i in range(len(names))
        ]
        if len(ids) > cfg.max_category_levels:
            # keep the root levels and the leaf: the leaf is the most specific signal
            ids = ids[: cfg.max_category_levels - 1] + ids[-1:]
        return ids

    def leaf_category_id(self, leaf: str) -> int:
        """The id of a leaf category *name* in the shared table: also how a target category is embedded."""
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

    # --- batches -------------------------------------------------------------------------------
    def extract(self, products: Sequence[Product]) -> Features:
        cfg = self.config
        n = len(products)
        bags: list[tuple[list[int], list[float]]] = []
        if cfg.uses_hashed:
            for product in products:
                merged: dict[int, float] = {}
                for key, weight in self.text_tokens(product).items():
                    bucket = stable_bucket(key, cfg.text_buckets)
                    merged[bucket] = merged.get(bucket, 0.0) + weight
                # largest weights first, so truncation drops the least informative tokens
                items = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.max_text_tokens]
                norm = math.sqrt(sum(w * w for _, w in items)) or 1.0  # "sqrtn" combiner
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

    def target_category_ids(self, categories: Sequence[str]) -> np.ndarray:
        """int64 [n] ids of target leaf categories for the complementary query tower."""
        return np.array([self.leaf_category_id(c) for c in categories], dtype=np.int64)

    def sentence_text(self, product: Product) -> str:
        """What a pretrained sentence encoder reads for a product (sentence text branches): the title
        (else the description); with `sentence_context`, then the category path and the description."""
        title = product.title.strip()
        if not self.config.sentence_context:
            return title if title else product.description[:512]
        parts = [title] if title else []
        if product.category_path:
            parts.append(" > ".join(product.category_path))
        if product.description.strip():
            parts.append(product.description.strip()[:300])
        return " | ".join(parts)


def pad_features(batches: Sequence[Features]) -> Features:
    """Concatenate feature batches whose text widths differ (right-pads with id 0 / weight 0)."""
    if not batches:
        raise ValueError("pad_features needs at least one batch")
    width = max(b.text_ids.shape[1] for b in batches)

    def widen(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    return Features(
        text_ids=np.concatenate([widen(b.text_ids) for b in batches]),
        text_weights=np.concatenate([widen(b.text_weights) for b in batches]),
        category_ids=np.concatenate([b.category_ids for b in batches]),
        leaf_id=np.concatenate([b.leaf_id for b in batches]),
        price_bucket=np.concatenate([b.price_bucket for b in batches]),
        brand_id=np.concatenate([b.brand_id for b in batches]),
        seller_id=np.concatenate([b.seller_id for b in batches]),
    )
