"""The "similar" task: substitutes of a product. Query tower = item tower (tied weights), so the
anchor's stored vector is the query; the anchor and its duplicates are filtered out in the index."""

from __future__ import annotations

from dataclasses import replace

from vitrine.errors import NotFoundError
from vitrine.index.port import ScoredItem, SearchFilter, VectorIndex


def similar(index: VectorIndex, product_id: str, limit: int, filter: SearchFilter) -> list[ScoredItem]:
    anchor = index.get([product_id]).get(product_id)
    if anchor is None:
        raise NotFoundError(f"product {product_id!r} is not in the index (unknown or deleted)")
    exclusions = replace(
        filter,
        exclude_ids=(*filter.exclude_ids, product_id),
        exclude_dedup_keys=(*filter.exclude_dedup_keys, anchor.payload.dedup_key)
        if anchor.payload.dedup_key
        else filter.exclude_dedup_keys,
    )
    return index.search(anchor.vector, limit, exclusions)
