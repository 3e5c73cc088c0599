"""Training pairs from behaviour, and the group-wise train / validation / test split.

- similar: two products co-viewed (same session, or an also_view link) at least `min_coview` times
  and never bought together: a co-viewed pair that is also co-purchased is a complement, not a
  substitute (in BundleRec every bundle pair is also a same-session pair; in Amazon 2018 about 40%
  of also_view pairs are also also_buy pairs).
- complementary: two products bought together (same bundle / basket, or an also_buy link) whose leaf
  categories differ: a same-leaf co-purchase is usually a substitute or a variant, not a complement.

Pairs are directed `(query, target)`; symmetric signals (sessions, bundles) give both directions.
The split assigns every product *group* (products with the same normalised title + brand, so
variants never straddle splits) to train, validation or test by a seeded hash; a pair belongs to
the latest split of its two products (train < validation < test). So no pair, and no product of a
held-out pair's held-out side, is ever seen in training: evaluation measures cold-start content
generalisation, which is what a content-only encoder is for.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from vitrine.catalog.schema import Product, normalise_text
from vitrine.data.datasets import Dataset

TASKS = ("similar", "complementary")
SPLITS = ("train", "val", "test")

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PairConfig:
    min_coview: int = 1  # co-view count (sessions + also_view links) a similar pair needs
    min_copurchase: int = 1
    # a session or bundle larger than this is browsing noise and would add quadratically many pairs
    max_group_size: int = 30
    require_different_leaf: bool = True  # the complementarity heuristic
    similar_excludes_copurchase: bool = True  # the substitute heuristic

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SplitConfig:
    seed: int = 13
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _group_counts(groups: Iterable[Sequence[str]], known: set[str], max_size: int) -> Counter[Pair]:
    counts: Counter[Pair] = Counter()
    for group in groups:
        ids = sorted({i for i in group if i in known})
        if 2 <= len(ids) <= max_size:
            counts.update(combinations(ids, 2))
    return counts


def _link_counts(links: Iterable[Pair], known: set[str]) -> Counter[Pair]:
    counts: Counter[Pair] = Counter()
    for a, b in links:
        if a != b and a in known and b in known:
            counts[(a, b) if a < b else (b, a)] += 1
    return counts


def similar_pairs(dataset: Dataset, config: PairConfig) -> list[Pair]:
    """Directed co-view (and not co-purchase) pairs, both directions, sorted for determinism."""
    known = {p.product_id for p in dataset.products}
    counts = _group_counts(dataset.sessions, known, config.max_group_size)
    counts.update(_link_counts(dataset.also_view, known))
    pairs = [pair for pair, n in counts.items() if n >= config.min_coview]
    if config.similar_excludes_copurchase:
        bought = _group_counts(dataset.bundles, known, config.max_group_size)
        bought.update(_link_counts(dataset.also_buy, known))
        pairs = [pair for pair in pairs if pair not in bought]
    return sorted({*pairs, *((b, a) for a, b in pairs)})


def complementary_pairs(dataset: Dataset, config: PairConfig) -> list[Pair]:
    """Directed co-purchase pairs passing the different-leaf heuristic, sorted for determinism.

    Bundles are unordered (both directions); also_buy links keep their direction.
    """
    products = dataset.by_id()
    known = set(products)
    counts = _group_counts(dataset.bundles, known, config.max_group_size)
    directed: Counter[Pair] = Counter()
    for (a, b), n in counts.items():
        directed[(a, b)] += n
        directed[(b, a)] += n
    for a, b in dataset.also_buy:
        if a != b and a in known and b in known:
            directed[(a, b)] += 1

    def complementary(a: str, b: str) -> bool:
        if not config.require_different_leaf:
            return True
        leaf_a, leaf_b = products[a].leaf_category, products[b].leaf_category
        return bool(leaf_a) and bool(leaf_b) and leaf_a != leaf_b

    return sorted(p for p, n in directed.items() if n >= config.min_copurchase and complementary(*p))


def task_pairs(dataset: Dataset, task: str, config: PairConfig) -> list[Pair]:
    if task == "similar":
        return similar_pairs(dataset, config)
    if task == "complementary":
        return complementary_pairs(dataset, config)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_group(product: Product) -> str:
    """Normalised title + brand, and nothing else: products of one group are never split apart (so
    products titled by their brand alone share a split; a model card's split stays reproducible)."""
    return f"{normalise_text(product.title)}|{normalise_text(product.brand)}"


def hashed_split(key: str, config: SplitConfig) -> str:
    """ "train" | "val" | "test" for `key` (already seeded by the caller), by its hash in [0, 1)."""
    u = _unit_hash(key)
    if u < config.test_fraction:
        return "test"
    if u < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def product_splits(products: Sequence[Product], config: SplitConfig) -> dict[str, str]:
    """product id → "train" | "val" | "test", by a seeded hash of its group (`split_group`)."""
    return {p.product_id: hashed_split(f"{config.seed}:{split_group(p)}", config) for p in products}


def split_pairs(pairs: Iterable[Pair], splits: Mapping[str, str]) -> dict[str, list[Pair]]:
    """Each pair goes to the latest split of its two products (train < val < test)."""
    rank = {name: i for i, name in enumerate(SPLITS)}
    out: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for a, b in pairs:
        out[SPLITS[max(rank[splits[a]], rank[splits[b]])]].append((a, b))
    return out
