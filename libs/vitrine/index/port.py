"""The index port: what the encoder and the recommender need from a vector index, nothing more.

Two adapters implement it: `EdgeIndex` (Qdrant Edge, in-process, embedded mode) and `QdrantServerIndex`
(qdrant-client against a Qdrant server, server mode), both on the shared base `IndexAdapter`
(`vitrine.index.base`); `vitrine.index.open_index(settings, ...)` is the one place that picks and
builds one. Both keep the same invariants:

- versioned writes: an upsert or delete whose version is not newer than the stored one is skipped
  (and counted), so duplicate and out-of-order deliveries cannot move the index backwards (the one
  rule: `vitrine.index.versioning.plan_versions`);
- deletes are tombstones (the point stays with `deleted=true` and its version) so an older upsert
  arriving after a delete cannot resurrect the product; searches never return tombstones;
- every failure of the engine is raised as `IndexBackendError` (a closed index too); a limit below 1
  is a `ValueError`. The congruence tests check both adapters fail alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from vitrine.catalog.schema import Product, dedup_key

# Stable point ids: Qdrant accepts unsigned ints or UUIDs; product ids are arbitrary strings.
_POINT_NAMESPACE = uuid.UUID("8f0c3c1e-6d1b-4a55-9d53-5a4f0d7e2b10")


def point_id(product_id: str) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, product_id))


@dataclass(frozen=True, slots=True)
class ItemPayload:
    """What the recommender filters and explains with (mirrors vitrine.v1.ItemPayload)."""

    title: str = ""
    brand: str = ""
    seller: str = ""
    category_path: tuple[str, ...] = ()
    price: float | None = None
    currency: str = ""
    in_stock: bool = True
    cluster: int = -1
    dedup_key: str = ""

    @property
    def leaf_category(self) -> str:
        return self.category_path[-1] if self.category_path else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "brand": self.brand,
            "seller": self.seller,
            "category_path": list(self.category_path),
            "leaf_category": self.leaf_category,
            "price": self.price,
            "currency": self.currency,
            # Flags are stored as 0/1: qdrant-edge-py 0.9 turns a bool MatchValue into an integer,
            # so a bool payload could never be matched. Integers behave the same in both adapters.
            "in_stock": int(self.in_stock),
            "cluster": self.cluster,
            "dedup_key": self.dedup_key,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemPayload:
        return cls(
            title=d.get("title", ""),
            brand=d.get("brand", ""),
            seller=d.get("seller", ""),
            category_path=tuple(d.get("category_path") or ()),
            price=d.get("price"),
            currency=d.get("currency", ""),
            in_stock=bool(d.get("in_stock", True)),
            cluster=int(d.get("cluster", -1)),
            dedup_key=d.get("dedup_key", ""),
        )


def payload_for(product: Product, cluster: int = -1) -> ItemPayload:
    """What the index holds for a product: what filters, caps and reasons read (an inline product of a
    request gets the same, without a cluster)."""
    return ItemPayload(
        title=product.title,
        brand=product.brand,
        seller=product.seller,
        category_path=product.category_path,
        price=product.price,
        currency=product.currency,
        in_stock=product.availability.purchasable,
        cluster=cluster,
        dedup_key=dedup_key(product),
    )


@dataclass(frozen=True, slots=True)
class IndexedItem:
    """An upsert: the product's item vector and payload at `version`."""

    product_id: str
    version: int
    vector: np.ndarray
    payload: ItemPayload
    # when the catalogue event behind this version happened (for freshness); not stored in the index
    event_time: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A delete of the product at `version`."""

    product_id: str
    version: int
    event_time: datetime | None = field(default=None, compare=False)


# The one change type every writer takes (the index, the vectors topic): an upsert or a delete.
Change = IndexedItem | Tombstone


@dataclass(frozen=True, slots=True)
class ScoredItem:
    product_id: str
    score: float
    payload: ItemPayload


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Business filters, pushed down into the index (payload indexes) rather than applied after."""

    in_stock_only: bool = True
    exclude_ids: tuple[str, ...] = ()
    exclude_dedup_keys: tuple[str, ...] = ()
    categories_include: tuple[str, ...] = ()  # match any level of the category path
    categories_exclude: tuple[str, ...] = ()
    sellers_include: tuple[str, ...] = ()
    sellers_exclude: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    clusters: tuple[int, ...] = ()
    leaf_categories: tuple[str, ...] = ()  # match the leaf category exactly (a complementary target)
    exclude_leaf_categories: tuple[str, ...] = ()  # leaf categories never returned (a product's own)


@dataclass(frozen=True, slots=True)
class Mmr:
    """Maximal Marginal Relevance: re-rank the `candidates` nearest items so that each next pick is
    relevant to the query but unlike the items already picked (Qdrant's MMR, in both engines)."""

    diversity: float = 0.5  # 0 = relevance only .. 1 = diversity only
    candidates: int = 100  # nearest items considered (at least the request's limit)

    def __post_init__(self) -> None:
        if not 0.0 <= self.diversity <= 1.0:
            raise ValueError(f"MMR diversity must be in [0, 1], got {self.diversity}")
        if self.candidates < 1:
            raise ValueError(f"MMR candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One search of a batch (`VectorIndex.search_batch`)."""

    vector: np.ndarray
    limit: int
    filter: SearchFilter | None = None
    mmr: Mmr | None = None  # None = plain nearest neighbours


@dataclass
class WriteResult:
    written: int = 0
    deleted: int = 0
    # skipped: superseded by a newer change of the same product in the batch, or not newer than
    # what the index already held
    stale: int = 0
    stale_ids: list[str] = field(default_factory=list)  # products of which nothing was written


class VectorIndex(Protocol):
    """A versioned vector index. Writes return only after the index has applied them."""

    dim: int

    def apply(self, changes: Sequence[Change], stored: Mapping[str, int] | None = None) -> WriteResult:
        """Upsert and delete, skipping anything not newer than what is stored (the newest change per
        product wins within the batch). `stored`: the versions `versions()` returned for these
        products when the caller read them for this batch (the encoder reads them once, before it
        encodes); None reads them now."""
        ...

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Stored version per product id (tombstones included); absent ids are missing from the dict."""
        ...

    def get(self, product_ids: Sequence[str]) -> dict[str, IndexedItem]:
        """Live (not deleted) items with their vectors."""
        ...

    def search(self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None) -> list[ScoredItem]:
        """Nearest live items by dot product (vectors are L2-normalised: cosine)."""
        ...

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[ScoredItem]]:
        """Several searches (nearest or MMR) planned and run together; one result list per request."""
        ...

    def exact_search(
        self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None
    ) -> list[ScoredItem]:
        """Brute-force nearest live items in the same engine: the ground truth for ANN recall, and
        what offline evaluation scores with (the only allowed difference from serving)."""
        ...

    def count(self) -> int:
        """Number of live (not deleted) items."""
        ...

    def optimize(self) -> None:
        """Merge segments, drop superseded points and build HNSW where due. Qdrant Edge runs no
        background optimizer, so its owner calls this; a Qdrant server optimizes by itself."""
        ...

    def flush(self) -> None:
        """Persist what was applied (Qdrant Edge); a Qdrant server acknowledges writes durably."""
        ...

    def point_alias(self, alias: str) -> None:
        """Atomically make `alias` name this index (server mode's zero-downtime model switch); a
        Qdrant Edge shard has no aliases and raises IndexBackendError."""
        ...

    def close(self) -> None:
        """Flush and release the engine; calling it again does nothing."""
        ...
