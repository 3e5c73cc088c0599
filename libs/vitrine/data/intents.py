"""Free-text intents with the products that serve them (BundleRec's bundle intents), and their split.

A BundleRec bundle is a set of products bought together with a crowd-written intent ("Car sound
system and radio set up"). Several bundles share an intent text (1,750 bundles, ~1,300 distinct
normalised intents per domain). An `IntentQuery` is one distinct normalised intent with the union
of the items of every bundle that has it: the query a shopper would type, and what answers it.

The split goes by normalised intent text, so no intent text is in two splits (the bundles of one
intent always travel together). A seeded hash of the normalised text decides train / val / test,
exactly like the product split (`vitrine.data.pairs`), so it is recomputed from the seed and the
fractions in the model card, never stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vitrine.data.datasets import Dataset
from vitrine.data.pairs import SplitConfig, hashed_split

SPLITS = ("train", "val", "test")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_intent(text: str) -> str:
    """Lower case, punctuation and runs of spaces collapsed: "Camera  accessories!" → "camera accessories"."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


@dataclass(frozen=True, slots=True)
class IntentSplitConfig(SplitConfig):
    """The product split's configuration with larger held-out shares (intents are few)."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentSplitConfig:
        return cls(**{k: data[k] for k in ("seed", "val_fraction", "test_fraction") if k in data})


@dataclass(frozen=True, slots=True)
class IntentQuery:
    text: str  # as a shopper wrote it (the first bundle's spelling)
    key: str  # normalised: what the split and the grouping go by
    items: tuple[str, ...]  # product ids of every bundle with this intent, each once, in bundle order
    bundles: int  # how many bundles share the intent


def intent_queries(dataset: Dataset) -> list[IntentQuery]:
    """One query per distinct normalised intent, in order of first appearance; bundles without an
    intent, or whose products are all outside the catalogue, are left out."""
    known = {p.product_id for p in dataset.products}
    texts: dict[str, str] = {}
    items: dict[str, dict[str, None]] = {}
    counts: dict[str, int] = {}
    for bundle, intent in zip(dataset.bundles, dataset.bundle_intents, strict=False):
        key = normalise_intent(intent)
        members = [i for i in bundle if i in known]
        if not key or not members:
            continue
        texts.setdefault(key, " ".join(intent.split()))
        items.setdefault(key, {}).update(dict.fromkeys(members))
        counts[key] = counts.get(key, 0) + 1
    return [IntentQuery(texts[k], k, tuple(items[k]), counts[k]) for k in texts]


def intent_split(key: str, config: IntentSplitConfig) -> str:
    return hashed_split(f"intent:{config.seed}:{key}", config)


def split_intents(queries: Sequence[IntentQuery], config: IntentSplitConfig) -> dict[str, list[IntentQuery]]:
    out: dict[str, list[IntentQuery]] = {name: [] for name in SPLITS}
    for q in queries:
        out[intent_split(q.key, config)].append(q)
    return out
