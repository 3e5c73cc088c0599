"""The "complementary" task: what goes with a product. The complementary query tower reads the product
and a target category; it runs once per target category (all targets in one ONNX call, all searches in
one index batch), each search restricted to its target's leaf category, and the lists are interleaved
in target order. Targets come from the model's complementary-category map (mined from co-purchases)
unless the caller names them; the product's own leaf category is never a target.

The vectors searched are the complementary model's item vectors (its own index), since its query
tower is trained against its own item tower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from vitrine.catalog.schema import Product
from vitrine.errors import InvalidRequestError
from vitrine.index.port import SearchRequest, payload_for
from vitrine.serving.anchors import AnchorRef, excluding_anchor, lookup, product_of, require_model
from vitrine.serving.deadline import Deadline
from vitrine.serving.diversity import interleave
from vitrine.serving.registry import ServedModel
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.selection import Candidates, RequestFilter, collect


@dataclass(frozen=True, slots=True)
class ComplementaryQuery:
    anchor: AnchorRef
    limit: int
    target_categories: tuple[str, ...] = ()  # empty = the model's map
    filters: RequestFilter = field(default_factory=RequestFilter)


def complementary(served: ServedModel, query: ComplementaryQuery, deadline: Deadline) -> list[Recommendation]:
    model = require_model(served.model, served.name, "Complementary")
    if query.anchor.product is None:
        item = lookup(served.index, query.anchor.product_id)
        product: Product = product_of(item.product_id, item.payload)
        dedup = item.payload.dedup_key
    else:
        product = query.anchor.product
        dedup = payload_for(product).dedup_key
    leaf = product.leaf_category
    if leaf and leaf in query.target_categories:
        raise InvalidRequestError(f"target_categories: {leaf!r} is the product's own category")
    targets = query.target_categories or tuple(t for t in model.complementary_map.get(leaf, ()) if t != leaf)
    if not targets:
        return []  # nothing is known to go with this category
    vectors = model.encode_complementary_queries([product] * len(targets), list(targets))
    deadline.check()
    base = excluding_anchor(query.filters.index, query.anchor.product_id, dedup)
    label = query.anchor.label

    def search(fetch: int) -> Candidates:
        requests = [
            SearchRequest(v, fetch, replace(base, leaf_categories=(t,)))
            for v, t in zip(vectors, targets, strict=True)
        ]
        results = served.index.search_batch(requests)
        lists = [
            [
                Recommendation(h, Task.COMPLEMENTARY, f"goes with {label}: {t}", query.anchor.product_id, t)
                for h in hits
            ]
            for hits, t in zip(results, targets, strict=True)
        ]
        return interleave(lists), any(len(hits) == fetch for hits in results)

    per_target = math.ceil(query.limit / len(targets))
    return collect(search, query.limit, per_target, query.filters.caps, deadline)
