"""The "similar" task: substitutes of a product. Query tower = item tower (tied weights), so the
anchor's item vector is the query: the stored one, or the item tower's for an inline product. The
anchor and its duplicates are filtered out inside the index."""

from __future__ import annotations

from dataclasses import dataclass, field

from vitrine.serving.anchors import AnchorRef, excluding_anchor, item_space_anchor
from vitrine.serving.deadline import Deadline
from vitrine.serving.registry import ServedModel
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.selection import Candidates, RequestFilter, collect


@dataclass(frozen=True, slots=True)
class SimilarQuery:
    anchor: AnchorRef
    limit: int
    filters: RequestFilter = field(default_factory=RequestFilter)


def similar(served: ServedModel, query: SimilarQuery, deadline: Deadline) -> list[Recommendation]:
    anchor = item_space_anchor(served.index, served.model, served.name, query.anchor)
    deadline.check()
    f = excluding_anchor(query.filters.index, anchor.product_id, anchor.payload.dedup_key)
    reason = f"similar to {query.anchor.label}"

    def search(fetch: int) -> Candidates:
        hits = served.index.search(anchor.vector, fetch, f)
        recs = [Recommendation(h, Task.SIMILAR, reason, anchor.product_id) for h in hits]
        return recs, len(hits) == fetch

    return collect(search, query.limit, query.limit, query.filters.caps, deadline)
