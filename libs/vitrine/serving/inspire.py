"""The "inspire" task: diverse discovery from a browsing history or a free-text intent.

Anchors: for a history, the most recent viewed item of each leaf category (most recent category
first, up to `max_anchors`); for an intent, the intent itself, embedded into the item space by the
model's intent tower (a sentence encoder + a projection trained on (intent → product) pairs,
`vitrine train --task intent`). A model without one falls back to its item tower reading the intent
as if it were a product title (docs/API.md: a far weaker reading, kept so such models still answer).

An intent's default list is its nearest items (MMR at diversity 0, `vitrine.api.requests`); with an
intent tower that re-scores (`IntentRescoring`), its `depth` nearest candidates are re-ranked by the
tower's score and the TF-IDF cosine of the intent and each candidate's title + category path, the way
complementary serving re-scores (the item space and the index stay as they are).

Clustered strategy (DESIGN.md): items carry the k-means cluster of the item space they fall in
(assigned by the encoder from the model's centroids). Per anchor, the `nearest_clusters` clusters
nearest to the anchor after skipping the `skip_clusters` nearest are searched, each restricted to its
cluster; the lists are interleaved across clusters, then across anchors. MMR strategy: per anchor,
Maximal Marginal Relevance over its nearest candidates; interleaved across anchors.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.errors import NotFoundError
from vitrine.index.port import Mmr, ScoredItem, SearchFilter, SearchRequest
from vitrine.model.inference import InferenceModel
from vitrine.model.lexical import intent_lexical_text
from vitrine.serving.anchors import require_model
from vitrine.serving.deadline import Deadline
from vitrine.serving.diversity import interleave, nearest_clusters
from vitrine.serving.errors import NotConfiguredError
from vitrine.serving.hybrid import blend
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
class CandidateRescoring:
    """Re-ranks an anchor's `depth` nearest candidates (an intent's nearest-items search)."""

    depth: int
    rescore: Callable[[list[ScoredItem]], list[ScoredItem]]


@dataclass(frozen=True, slots=True)
class _Anchor:
    product_id: str  # "" for the intent
    vector: np.ndarray
    label: str
    rescoring: CandidateRescoring | None = None


@dataclass(frozen=True, slots=True)
class _Search:
    """One searched list: an anchor's cluster (clustered strategy) or the anchor's MMR list."""

    anchor: _Anchor
    cluster: int | None = None  # None = MMR

    def wanted(self, fetch: int) -> int:
        r = self.anchor.rescoring
        return max(fetch, r.depth) if r is not None else fetch

    def ranked(self, hits: list[ScoredItem]) -> list[ScoredItem]:
        r = self.anchor.rescoring
        return r.rescore(hits) if r is not None else hits

    def request(self, fetch: int, base: SearchFilter, diversity: float) -> SearchRequest:
        if self.cluster is not None:
            return SearchRequest(self.anchor.vector, fetch, replace(base, clusters=(self.cluster,)))
        if diversity == 0.0:  # relevance only: MMR would re-rank its candidates into the same order
            return SearchRequest(self.anchor.vector, self.wanted(fetch), base)
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
        requests = [s.request(fetch, base, query.mmr_diversity) for s in searches]
        results = served.index.search_batch(requests)
        lists = iter(
            [Recommendation(h, Task.INSPIRE, s.reason(h), s.anchor.product_id) for h in s.ranked(hits)]
            for s, hits in zip(searches, results, strict=True)
        )
        # interleave each anchor's clusters, then the anchors
        per_anchor = [interleave([next(lists) for _ in group]) for group in plan]
        more = any(len(hits) == r.limit for hits, r in zip(results, requests, strict=True))
        return interleave(per_anchor), more

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


def intent_vector(model: InferenceModel, intent: str) -> np.ndarray:
    """The intent's anchor in the item space: the intent tower's, else the item tower's reading of the
    intent as a product title (the fallback for models without an intent tower)."""
    if model.intent is not None:
        return model.encode_intents([intent])[0]
    return model.encode_items([Product(product_id="", title=intent)])[0]


def intent_rescoring(model: InferenceModel, intent: str) -> CandidateRescoring | None:
    """The intent tower's hybrid re-scoring of its candidates (None: the model's tower has none).

    Order: q.v + w x tfidf(intent, title + category path); the score returned is that sum / (1 + w),
    a weighted mean of two cosines, so the API's contract that a score lies in [-1, 1] holds."""
    tower = model.intent
    if tower is None or tower.rescoring is None or tower.lexical is None:
        return None
    lexical, weight = tower.lexical, tower.rescoring.lexical_weight
    query = lexical.vector(intent)

    def rescore(hits: list[ScoredItem]) -> list[ScoredItem]:
        return blend(
            hits,
            lambda h: lexical.cosine_to(query, intent_lexical_text(h.payload.title, h.payload.category_path)),
            weight,
        )

    return CandidateRescoring(tower.rescoring.depth, rescore)


def _anchors(served: ServedModel, query: InspireQuery) -> tuple[list[_Anchor], SearchFilter]:
    base = query.filters.index
    if query.intent:
        model = require_model(served.model, served.name, "a free-text intent")
        vector = intent_vector(model, query.intent)
        short = query.intent if len(query.intent) <= 40 else query.intent[:39] + "…"
        nearest = query.strategy is Strategy.MMR and query.mmr_diversity == 0.0
        rescoring = intent_rescoring(model, query.intent) if nearest else None
        return [_Anchor("", vector, f"for {short!r}", rescoring)], base
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
