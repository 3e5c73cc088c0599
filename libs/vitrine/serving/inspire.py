"""The "inspire" task: diverse discovery from a browsing history or a free-text intent.

Anchors: for a history, the most recent viewed item of each leaf category (most recent category
first, up to `max_anchors`); for an intent, the intent itself, embedded into the item space by the
item tower reading it as a product title (a sentence-encoder text branch embeds it with that encoder).

Clustered strategy (DESIGN.md): items carry the k-means cluster of the item space they fall in
(assigned by the encoder from the model's centroids). Per anchor, the `nearest_clusters` clusters
nearest to the anchor after skipping the `skip_clusters` nearest are searched, each restricted to its
cluster; the lists are interleaved across clusters, then across anchors. MMR strategy: per anchor,
Maximal Marginal Relevance over its nearest candidates; interleaved across anchors.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.errors import NotFoundError
from vitrine.index.port import Mmr, ScoredItem, SearchFilter, SearchRequest
from vitrine.serving.anchors import require_model
from vitrine.serving.deadline import Deadline
from vitrine.serving.diversity import interleave, nearest_clusters
from vitrine.serving.errors import NotConfiguredError
from vitrine.serving.registry import ServedModel
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.selection import Candidates, RequestFilter, collect

MMR_CANDIDATES_PER_ITEM = 4  # MMR picks from the nearest 4 x wanted (at least 50, at most 2,000)
MIN_MMR_CANDIDATES = 50
MAX_MMR_CANDIDATES = 2_000


class Strategy(enum.StrEnum):
    CLUSTERS = "clusters"
    MMR = "mmr"


@dataclass(frozen=True, slots=True)
class InspireQuery:
    history: tuple[str, ...] = ()  # product ids, most recent first, no repeats
    intent: str = ""
    limit: int = 10
    filters: RequestFilter = field(default_factory=RequestFilter)
    strategy: Strategy = Strategy.CLUSTERS
    nearest_clusters: int = 3
    skip_clusters: int = 0
    max_anchors: int = 5
    mmr_diversity: float = 0.5


@dataclass(frozen=True, slots=True)
class _Anchor:
    product_id: str  # "" for the intent
    vector: np.ndarray
    label: str


@dataclass(frozen=True, slots=True)
class _Search:
    """One searched list: an anchor's cluster (clustered strategy) or the anchor's MMR list."""

    anchor: _Anchor
    cluster: int | None = None  # None = MMR

    def request(self, fetch: int, base: SearchFilter, diversity: float) -> SearchRequest:
        if self.cluster is not None:
            return SearchRequest(self.anchor.vector, fetch, replace(base, clusters=(self.cluster,)))
        candidates = min(MAX_MMR_CANDIDATES, max(MIN_MMR_CANDIDATES, MMR_CANDIDATES_PER_ITEM * fetch))
        return SearchRequest(self.anchor.vector, fetch, base, Mmr(diversity, candidates))

    def reason(self, hit: ScoredItem) -> str:
        a = self.anchor.label
        return a if self.cluster is None else f"{a} (cluster {hit.payload.cluster})"


def inspire(served: ServedModel, query: InspireQuery, deadline: Deadline) -> list[Recommendation]:
    anchors, base = _anchors(served, query)
    deadline.check()
    plan = _plan(served, query, anchors)  # per anchor, its searched lists
    searches = [s for group in plan for s in group]
    per_list = math.ceil(query.limit / max(1, len(searches)))

    def search(fetch: int) -> Candidates:
        results = served.index.search_batch([s.request(fetch, base, query.mmr_diversity) for s in searches])
        lists = iter(
            [Recommendation(h, Task.INSPIRE, s.reason(h), s.anchor.product_id) for h in hits]
            for s, hits in zip(searches, results, strict=True)
        )
        # interleave each anchor's clusters, then the anchors
        per_anchor = [interleave([next(lists) for _ in group]) for group in plan]
        return interleave(per_anchor), any(len(hits) == fetch for hits in results)

    return collect(search, query.limit, per_list, query.filters.caps, deadline)


def _plan(served: ServedModel, query: InspireQuery, anchors: list[_Anchor]) -> list[list[_Search]]:
    if query.strategy is Strategy.MMR:
        return [[_Search(a)] for a in anchors]
    model = served.model
    if model is None or model.centroids is None:
        raise NotConfiguredError(
            f"model {served.name!r} has no k-means centroids: use the MMR diversity strategy"
        )
    centroids = model.centroids
    return [
        [
            _Search(a, c)
            for c in nearest_clusters(a.vector, centroids, query.nearest_clusters, query.skip_clusters)
        ]
        for a in anchors
    ]


def _anchors(served: ServedModel, query: InspireQuery) -> tuple[list[_Anchor], SearchFilter]:
    base = query.filters.index
    if query.intent:
        model = require_model(served.model, served.name, "a free-text intent")
        vector = model.encode_items([Product(product_id="", title=query.intent)])[0]
        short = query.intent if len(query.intent) <= 40 else query.intent[:39] + "…"
        return [_Anchor("", vector, f"for {short!r}")], base
    found = served.index.get(list(query.history))
    known = [found[pid] for pid in query.history if pid in found]
    if not known:
        raise NotFoundError("none of the history's products is in the index (unknown or deleted)")
    anchors: list[_Anchor] = []
    categories: set[str] = set()
    for item in known:  # most recent first: the first item of a category is its most recent
        leaf = item.payload.leaf_category
        if leaf in categories:
            continue
        categories.add(leaf)
        anchors.append(_Anchor(item.product_id, item.vector, f"inspired by {item.product_id}"))
        if len(anchors) == query.max_anchors:
            break
    dedup = tuple(i.payload.dedup_key for i in known if i.payload.dedup_key)
    base = replace(
        base,
        exclude_ids=(*base.exclude_ids, *query.history),
        exclude_dedup_keys=(*base.exclude_dedup_keys, *dedup),
    )
    return anchors, base
