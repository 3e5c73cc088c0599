"""How both index adapters lay out a collection: payload indexes and the filtered-search planner.

Every field a filter touches has a payload index. Fields that narrow a query to a *mid-sized* part
of the catalogue (a leaf category, a category path, a seller, a k-means cluster: Complementary and
Inspire search one of these per query) also get filter-aware HNSW links (Qdrant's `payload_m`), so a
filtered query walks a graph that stays connected inside the filter instead of scanning every
matching point. Measured on 1M items (docs/BENCHMARKS.md): one category is ~34k points; scanning
them while checking the stock and deletion conditions costs ~11 ms a query, the graph walk ~1 ms.
Unique or near-universal fields (ids, dedup keys, 0/1 flags, price ranges) gain nothing from links.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PayloadField:
    kind: str  # "keyword" | "integer" | "float"
    graph: bool  # build filter-aware HNSW links for this field's values


PAYLOAD_FIELDS: dict[str, PayloadField] = {
    "product_id": PayloadField("keyword", graph=False),
    "deleted": PayloadField("integer", graph=False),  # 0/1, see ItemPayload.to_dict
    "in_stock": PayloadField("integer", graph=False),
    "category_path": PayloadField("keyword", graph=True),
    "leaf_category": PayloadField("keyword", graph=True),
    "seller": PayloadField("keyword", graph=True),
    "dedup_key": PayloadField("keyword", graph=False),
    "price": PayloadField("float", graph=False),
    "cluster": PayloadField("integer", graph=True),
}

# Below this many matching points a filtered query scans them exactly (cheap and exact); above, it
# walks the graph. Qdrant also builds the extra links only for field values with more points.
DEFAULT_FULL_SCAN_POINTS = 2_000


def full_scan_threshold_kb(points: int, dim: int) -> int:
    """Qdrant expresses the threshold in KiB of float32 vectors, not in points."""
    return max(1, points * dim * 4 // 1024)
