"""Feature extraction for the Product Encoder: `Product` → integer ids and weights (numpy only).

Training and serving both call `FeatureExtractor.extract`, configured by the `FeatureConfig` stored in
the model directory, so the ONNX towers always see exactly the features they were trained on. Every
vocabulary is a hash (CRC-32, stable across processes and platforms) into a fixed number of buckets:
unseen words, brands and sellers still get an id, and no vocabulary file has to be shipped. Id 0 is
reserved for padding / missing in every table.

A batch is extracted as array work (numpy), not product by product: the encoder extracts every
micro-batch, so this is on its hot path. The output is bit for bit what the per-product loop this
replaced computed (tests/unit/catalog/test_features_identical.py), so trained models are unaffected.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from vitrine.catalog.schema import Product, normalise_text, normalised_words

TEXT_BRANCHES = ("hashed", "sentence", "hashed+sentence")
# how much of the description a sentence text reads: after the title and category path (context),
# or in place of an empty title
SENTENCE_CONTEXT_CHARS = 300
SENTENCE_FALLBACK_CHARS = 512
_TOKEN = re.compile(r"\S+")


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
    """Turns products into `Features` with one fixed `FeatureConfig`.

    Stateless apart from the config and bounded caches of pure functions of it (category paths,
    leaves, brands and sellers repeat across a catalogue). A batch's text is array work: each
    product's title and description are normalised and split once, every token key (word, char
    n-gram, bigram, description word) is a byte span of a few buffers shared by the whole batch, and
    the keys are hashed together (`crc32_spans`), summed per bucket, ranked and normalised with numpy.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._log_step = math.log1p(config.price_max) / (config.price_buckets - 2)
        self._path_ids: dict[tuple[str, ...], tuple[int, ...]] = {}
        self._leaf_ids: dict[str, int] = {}
        self._brand_ids: dict[str, int] = {}
        self._seller_ids: dict[str, int] = {}

    # --- single fields -------------------------------------------------------------------------
    def text_tokens(self, product: Product) -> dict[str, float]:
        """Hashed-bag tokens with their weights: words, word bigrams, char n-grams, description words.

        Read back from the same token spans `extract` hashes (for inspection; `extract` never builds
        these strings)."""
        keys = _TokenKeys.build(self.config, [product])
        raw = keys.buffer.tobytes()
        weights: dict[str, float] = {}
        for kind, start, length, weight in zip(
            keys.kinds.tolist(),
            keys.starts.tolist(),
            keys.lengths.tolist(),
            keys.weights.tolist(),
            strict=True,
        ):
            key = _PREFIXES[kind].decode() + raw[start : start + length].decode("utf-8")
            weights[key] = weights.get(key, 0.0) + weight
        return weights

    def category_ids(self, path: Sequence[str]) -> list[int]:
        """One id per path prefix (root, root>sub, ...) in the shared category table; deeper levels fold."""
        return list(self._category_path_ids(tuple(path)))

    def _category_path_ids(self, path: tuple[str, ...]) -> tuple[int, ...]:
        ids = self._path_ids.get(path)
        if ids is None:
            cfg = self.config
            names = [normalise_text(p) for p in path if p.strip()]
            computed = [
                stable_bucket("p:" + " > ".join(names[: i + 1]), cfg.category_buckets)
                for i in range(len(names))
            ]
            if len(computed) > cfg.max_category_levels:
                # keep the root levels and the leaf: the leaf is the most specific signal
                computed = computed[: cfg.max_category_levels - 1] + computed[-1:]
            ids = _remember(self._path_ids, path, tuple(computed))
        return ids

    def leaf_category_id(self, leaf: str) -> int:
        """The id of a leaf category *name* in the shared table: also how a target category is embedded."""
        cached = self._leaf_ids.get(leaf)
        if cached is None:
            name = normalise_text(leaf)
            value = stable_bucket("l:" + name, self.config.category_buckets) if name else 0
            cached = _remember(self._leaf_ids, leaf, value)
        return cached

    def price_bucket(self, price: float | None) -> int:
        if price is None or not math.isfinite(price) or price < 0:
            return 0
        bucket = int(math.log1p(price) / self._log_step)
        return 1 + min(bucket, self.config.price_buckets - 2)

    def brand_id(self, brand: str) -> int:
        cached = self._brand_ids.get(brand)
        if cached is None:
            name = normalise_text(brand)
            value = stable_bucket("br:" + name, self.config.brand_buckets) if name else 0
            cached = _remember(self._brand_ids, brand, value)
        return cached

    def seller_id(self, seller: str) -> int:
        cached = self._seller_ids.get(seller)
        if cached is None:
            name = seller.strip().casefold()
            value = stable_bucket("se:" + name, self.config.seller_buckets) if name else 0
            cached = _remember(self._seller_ids, seller, value)
        return cached

    # --- batches -------------------------------------------------------------------------------
    def extract(self, products: Sequence[Product]) -> Features:
        cfg = self.config
        n = len(products)
        if cfg.uses_hashed:
            text_ids, text_weights = self._text_bags(products)
        else:
            text_ids, text_weights = np.zeros((n, 1), dtype=np.int64), np.zeros((n, 1), dtype=np.float32)

        paths = [self._category_path_ids(p.category_path) for p in products]
        depth = np.fromiter((len(ids) for ids in paths), dtype=np.int64, count=n)
        category_ids = np.zeros((n, cfg.max_category_levels), dtype=np.int64)
        if n and depth.any():
            rows = np.repeat(np.arange(n), depth)
            category_ids[rows, np.arange(rows.size) - np.repeat(np.cumsum(depth) - depth, depth)] = list(
                itertools.chain.from_iterable(paths)
            )
        return Features(
            text_ids=text_ids,
            text_weights=text_weights,
            category_ids=category_ids,
            leaf_id=np.fromiter((self.leaf_category_id(p.leaf_category) for p in products), np.int64, n),
            price_bucket=np.fromiter((self.price_bucket(p.price) for p in products), np.int64, n),
            brand_id=np.fromiter((self.brand_id(p.brand) for p in products), np.int64, n),
            seller_id=np.fromiter((self.seller_id(p.seller) for p in products), np.int64, n),
        )

    def _text_bags(self, products: Sequence[Product]) -> tuple[np.ndarray, np.ndarray]:
        """int64 ids and float32 weights [n, L] of the hashed bags: per product, the summed weight of
        every bucket, largest first (ties: smaller bucket first), at most `max_text_tokens`, scaled
        to unit L2 norm ("sqrtn" combiner); rows right-padded with id 0 / weight 0. Bucket weights
        are sums of 1.0s and `description_weight`s, exact in any order for a binary fraction such as
        the default 0.5."""
        cfg = self.config
        n = len(products)
        keys = _TokenKeys.build(cfg, products)
        seeds = _PREFIX_CRC[keys.kinds]
        buckets = 1 + crc32_spans(keys.buffer, keys.starts, keys.lengths, seeds).astype(np.int64) % (
            cfg.text_buckets - 1
        )
        # one cell per (product, bucket) with the summed weight of its keys (colliding keys add up)
        cell_of_key = keys.products * cfg.text_buckets + buckets
        order = np.argsort(cell_of_key, kind="stable")
        sorted_cells = cell_of_key[order]
        first_key = np.flatnonzero(np.concatenate(([True], sorted_cells[1:] != sorted_cells[:-1])))
        first_key = first_key[: sorted_cells.size]  # no cell at all without keys
        weights = np.add.reduceat(keys.weights[order], first_key) if first_key.size else keys.weights[:0]
        product, bucket = np.divmod(sorted_cells[first_key], cfg.text_buckets)
        # within a product, largest weights first; lexsort is stable, so ties keep the smaller bucket first
        order = np.lexsort((-weights, product))
        product, bucket, weights = product[order], bucket[order], weights[order]
        rank = np.arange(product.size) - np.searchsorted(product, np.arange(n))[product]
        if rank.size and rank.max() >= cfg.max_text_tokens:
            kept = rank < cfg.max_text_tokens  # truncation drops the least informative tokens
            product, bucket, weights, rank = product[kept], bucket[kept], weights[kept], rank[kept]
        norm = np.sqrt(np.bincount(product, weights=weights * weights, minlength=n))
        norm[norm == 0] = 1.0
        width = int(rank.max()) + 1 if rank.size else 1
        text_ids = np.zeros((n, width), dtype=np.int64)
        text_weights = np.zeros((n, width), dtype=np.float32)
        cell = product * width + rank
        text_ids.ravel()[cell] = bucket
        text_weights.ravel()[cell] = weights / norm[product]
        return text_ids, text_weights

    def target_category_ids(self, categories: Sequence[str]) -> np.ndarray:
        """int64 [n] ids of target leaf categories for the complementary query tower."""
        return np.fromiter((self.leaf_category_id(c) for c in categories), np.int64, len(categories))

    def sentence_text(self, product: Product) -> str:
        """What a pretrained sentence encoder reads for a product (sentence text branches): the title
        (else the description); with `sentence_context`, then the category path and the description."""
        title = product.title.strip()
        if not self.config.sentence_context:
            return title if title else product.description[:SENTENCE_FALLBACK_CHARS]
        parts = [title] if title else []
        if product.category_path:
            parts.append(" > ".join(product.category_path))
        if product.description.strip():
            parts.append(product.description.strip()[:SENTENCE_CONTEXT_CHARS])
        return " | ".join(parts)

    def indexed_description(self, product: Product) -> str:
        """The start of `product.description` that `extract` and `sentence_text` read, cut after a
        whole word: what the index keeps next to the item vector, so a product rebuilt from its
        payload (a request by id) gets exactly the features, and vectors, the product itself got."""
        text, cfg = product.description, self.config
        words_needed = cfg.max_description_words if cfg.uses_hashed else 0
        chars_needed = 0
        if cfg.uses_sentence and cfg.sentence_context:
            chars_needed = len(text) - len(text.lstrip()) + SENTENCE_CONTEXT_CHARS
        elif cfg.uses_sentence and not product.title.strip():
            chars_needed = SENTENCE_FALLBACK_CHARS
        if not text or (words_needed <= 0 and chars_needed <= 0):
            return ""
        if len(normalised_words(text)) < words_needed:
            return text  # the loop below would not cut it either (one pass instead of one per word)
        words = 0
        for token in _TOKEN.finditer(text):
            # normalising word by word gives the words normalising the whole text gives
            words += len(normalise_text(token.group()).split())
            if words >= words_needed and token.end() >= chars_needed:
                return text[: token.end()]
        return text


# Key kinds of the hashed bag and the prefix each key's string starts with.
_WORD, _CHAR_NGRAM, _BIGRAM, _DESCRIPTION = 0, 1, 2, 3
_PREFIXES = (b"w:", b"c:", b"b:", b"d:")
_PREFIX_CRC = np.array([zlib.crc32(p) for p in _PREFIXES], dtype=np.uint32)
_CACHE_LIMIT = 100_000


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_LIMIT:  # bounded: a stream of ever-new brands cannot grow it forever
        cache.clear()
    cache[key] = value
    return value


@dataclass(frozen=True, slots=True)
class _TokenKeys:
    """A batch's hashed-bag keys as byte spans: key i is `_PREFIXES[kinds[i]]` followed by
    `buffer[starts[i]:starts[i] + lengths[i]]`, belongs to product `products[i]` and weighs
    `weights[i]`.

    The buffer is three texts joined for the whole batch: every title word separated by one space
    (words and, with the space between them, bigrams are spans of it), every title word padded as
    "<word>" (char n-grams are windows of n characters of it, which are byte spans once character
    boundaries are known: UTF-8 continuation bytes are 10xxxxxx), and every description word.
    """

    buffer: np.ndarray  # uint8
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64
    kinds: np.ndarray  # int64, index into _PREFIXES
    products: np.ndarray  # int64
    weights: np.ndarray  # float64

    @classmethod
    def build(cls, cfg: FeatureConfig, products: Sequence[Product]) -> _TokenKeys:
        title_words: list[list[bytes]] = []
        description_words: list[list[bytes]] = []
        use_description = cfg.max_description_words > 0
        for product in products:
            title_words.append(normalised_words(product.title)[: cfg.max_title_words])
            description_words.append(
                normalised_words(product.description)[: cfg.max_description_words]
                if use_description and product.description
                else []
            )
        words = list(itertools.chain.from_iterable(title_words))
        described = list(itertools.chain.from_iterable(description_words))
        word_product = _owners(title_words)
        titles = b" ".join(words)
        padded = b"<" + b"><".join(words) + b">" if words else b""
        descriptions = b" ".join(described)
        buffer = np.frombuffer(titles + padded + descriptions, dtype=np.uint8)

        parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray, float]] = []
        word_start, word_length = _word_spans(buffer[: len(titles)], len(words))
        parts.append((word_start, word_length, _WORD, word_product, 1.0))
        if words:
            # "<word>" i starts where word i starts in `titles` plus one byte per earlier word
            # ("a b" → "<a><b>"), and is two bytes longer
            padded_start = word_start + np.arange(len(words)) + len(titles)
            char_starts = _char_starts(buffer, len(titles), len(padded))
            first_char = np.searchsorted(char_starts, padded_start)
            chars = np.diff(np.append(first_char, char_starts.size - 1))
            for size in cfg.char_ngrams:
                windows = np.maximum(1, chars - size + 1)
                owner = np.repeat(np.arange(len(words)), windows)
                offset = np.arange(owner.size) - np.repeat(np.cumsum(windows) - windows, windows)
                begin = first_char[owner] + offset
                end = np.minimum(begin + size, first_char[owner] + chars[owner])
                start = char_starts[begin]
                parts.append((start, char_starts[end] - start, _CHAR_NGRAM, word_product[owner], 1.0))
        if cfg.word_bigrams and len(words) > 1:
            pair = np.flatnonzero(word_product[:-1] == word_product[1:])  # consecutive words of one title
            length = word_start[pair + 1] + word_length[pair + 1] - word_start[pair]
            parts.append((word_start[pair], length, _BIGRAM, word_product[pair], 1.0))
        if described:
            start, length = _word_spans(buffer[len(titles) + len(padded) :], len(described))
            offset = len(titles) + len(padded)
            parts.append(
                (start + offset, length, _DESCRIPTION, _owners(description_words), cfg.description_weight)
            )
        return cls(
            buffer=buffer,
            starts=np.concatenate([p[0] for p in parts]),
            lengths=np.concatenate([p[1] for p in parts]),
            kinds=np.concatenate([np.full(p[0].size, p[2], dtype=np.int64) for p in parts]),
            products=np.concatenate([p[3] for p in parts]).astype(np.int64, copy=False),
            weights=np.concatenate([np.full(p[0].size, p[4], dtype=np.float64) for p in parts]),
        )


def _owners(groups: list[list[bytes]]) -> np.ndarray:
    """int64 [sum of lengths]: the index of the group each flattened element came from."""
    return np.repeat(np.arange(len(groups)), np.fromiter(map(len, groups), np.int64, len(groups)))


def _word_spans(joined: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each of `count` words in `joined` (UTF-8, words separated by one space;
    no word contains a space byte, and no multi-byte UTF-8 sequence does either)."""
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    spaces = np.flatnonzero(joined == 0x20)
    start = np.concatenate(([0], spaces + 1))
    end = np.concatenate((spaces, [joined.size]))
    return start, end - start


def _char_starts(buffer: np.ndarray, offset: int, size: int) -> np.ndarray:
    """Byte positions (in `buffer`) of every character of buffer[offset:offset + size], then the end."""
    segment = buffer[offset : offset + size]
    starts = np.flatnonzero((segment & 0xC0) != 0x80) + offset
    return np.append(starts, offset + size)


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


# --- zlib's CRC-32 of many byte strings at once -------------------------------------------------
# `crc32_spans(buffer, starts, lengths, seeds)` equals, for every span i,
# `zlib.crc32(buffer[starts[i]:starts[i] + lengths[i]], seeds[i])`: the CRC-32 of a key continued
# from the CRC-32 of its prefix (`zlib.crc32(b"c:")` for "c:" + n-gram), so keys never have to exist
# as Python strings. The loop runs over byte positions, not keys: step j updates every span longer
# than j with the table-driven CRC step (the spans are sorted longest first, so those are a prefix of
# the array). Spans longer than `LONG_SPAN` bytes (a rare very long word) are finished with zlib
# itself, which bounds the number of steps per batch.

LONG_SPAN = 48


def _crc_table() -> np.ndarray:
    """The 256-entry table of the reflected CRC-32 polynomial 0xEDB88320 (zlib, PNG, Ethernet)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()  # a constant: a function of the polynomial only


def crc32_spans(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """uint32 [k]: `zlib.crc32(bytes(buffer[s:s + n]), seed)` for each (s, n, seed); `buffer` uint8."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    seeds = np.broadcast_to(np.asarray(seeds, dtype=np.uint32), starts.shape)
    k = starts.shape[0]
    out = np.empty(k, dtype=np.uint32)
    if k == 0:
        return out
    # longest first, so the spans still active at any step are a prefix (a radix sort of small keys)
    order = np.argsort((LONG_SPAN + 1 - np.minimum(lengths, LONG_SPAN + 1)).astype(np.uint8), kind="stable")
    s, n = starts[order], lengths[order]
    register = ~seeds[order]  # zlib keeps the register inverted between calls
    long_count = int(np.searchsorted(-n, -LONG_SPAN, side="left"))  # spans longer than LONG_SPAN
    steps = int(min(n[long_count] if long_count < k else 0, LONG_SPAN))
    # how many spans are longer than j, for every step j
    active = np.searchsorted(-n[long_count:], -np.arange(steps), side="left") + long_count
    table = _TABLE
    for j in range(steps):
        a = int(active[j])
        head = register[long_count:a]
        head ^= buffer[s[long_count:a] + j]
        register[long_count:a] = table[head & 0xFF] ^ (head >> 8)
    crc = ~register
    if long_count:
        raw = memoryview(buffer.tobytes())
        for i in range(long_count):
            start, length = int(s[i]), int(n[i])
            crc[i] = zlib.crc32(raw[start : start + length], int(seeds[order[i]]))
    out[order] = crc
    return out
