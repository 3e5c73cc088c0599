"""SearchFilter → Qdrant filter, once for both adapters.

qdrant-edge-py and qdrant-client expose the same filter model (Filter, FieldCondition, MatchValue,
MatchAny, a float range) with the same keyword arguments; only the classes differ. Building through
`FilterModels` keeps the two adapters' filtering identical by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitrine.index.port import SearchFilter


@dataclass(frozen=True)
class FilterModels:
    Filter: Any
    FieldCondition: Any
    MatchValue: Any
    MatchAny: Any
    Range: Any


def build_filter(m: FilterModels, f: SearchFilter) -> Any:
    def match(key: str, value: Any) -> Any:
        return m.FieldCondition(key=key, match=m.MatchValue(value=value))

    def any_of(key: str, values: tuple[Any, ...]) -> Any:
        return m.FieldCondition(key=key, match=m.MatchAny(any=list(values)))

    must: list[Any] = [match("deleted", 0)]  # 0/1 flags, see ItemPayload.to_dict
    if f.in_stock_only:
        must.append(match("in_stock", 1))
    if f.categories_include:
        must.append(any_of("category_path", f.categories_include))
    if f.sellers_include:
        must.append(any_of("seller", f.sellers_include))
    if f.clusters:
        must.append(any_of("cluster", f.clusters))
    if f.leaf_categories:
        must.append(any_of("leaf_category", f.leaf_categories))
    if f.price_min is not None or f.price_max is not None:
        must.append(m.FieldCondition(key="price", range=m.Range(gte=f.price_min, lte=f.price_max)))
    must_not: list[Any] = []
    if f.exclude_ids:
        must_not.append(any_of("product_id", f.exclude_ids))
    if f.exclude_dedup_keys:
        must_not.append(any_of("dedup_key", f.exclude_dedup_keys))
    if f.categories_exclude:
        must_not.append(any_of("category_path", f.categories_exclude))
    if f.sellers_exclude:
        must_not.append(any_of("seller", f.sellers_exclude))
    if f.exclude_leaf_categories:
        must_not.append(any_of("leaf_category", f.exclude_leaf_categories))
    return m.Filter(must=must, must_not=must_not or None)


def live_filter(m: FilterModels) -> Any:
    return m.Filter(must=[m.FieldCondition(key="deleted", match=m.MatchValue(value=0))])
