"""The "complementary" task: what goes with a product. One retrieval function, `complements`, serves the
gRPC method and is what `vitrine eval recommend` evaluates (`exact=True` there: brute force in the
same index engine instead of ANN is the only difference).

Which categories, and in what order:

- The caller names no category (the usual case): one query, the complementary query tower's "any
  category" vector, searched over the whole catalogue except the product's own leaf category. The
  tower was trained against items of every category (`vitrine.model.tasks.ComplementaryTask`), so its
  score carries *whether an item's category fits* as well as which item of it fits best: there is no
  category gate to miss the right category, and a product whose category never appeared in training
  still gets complements. Hybrid scoring: the tower's `rerank_depth` best candidates are re-scored
  by q.v / T + `lexical_weight` x the TF-IDF cosine of the product and the candidate (over the
  card's `lexical_text`: the title, or the title and the description as the payload keeps it; the
  model directory carries the idf table; weight and text are the card's, chosen on validation); the score
  returned is that sum rescaled into [-1, 1] (same order). The ranked
  list is returned by score (`display="score"`) or, with `display="interleave"`, regrouped
  round-robin over the categories in order of their best item.
- The caller names target categories: one conditional query per target (the tower given that
  category), each searching only that leaf category, interleaved in the caller's order.

The vectors searched are the complementary model's item vectors (its own index), since its query
tower is trained against its own item tower. The product's own leaf category is never a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from vitrine.catalog.schema import Product
from vitrine.errors import InvalidRequestError
from vitrine.index.port import ScoredItem, SearchFilter, SearchRequest, VectorIndex, payload_for
from vitrine.model.inference import InferenceModel
from vitrine.model.lexical import lexical_text
from vitrine.serving.anchors import AnchorRef, excluding_anchor, lookup, product_of, require_model
from vitrine.serving.deadline import Deadline
from vitrine.serving.diversity import interleave
from vitrine.serving.hybrid import blend
from vitrine.serving.registry import ServedModel
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.selection import Candidates, RequestFilter, collect

DISPLAYS = ("score", "interleave")
DEFAULT_DISPLAY = "score"  # chosen on validation recall (docs/EVALUATION.md, "display order")

Search = Callable[[Sequence[SearchRequest]], list[list[ScoredItem]]]


@dataclass(frozen=True, slots=True)
class ComplementaryQuery:
    anchor: AnchorRef
    limit: int
    target_categories: tuple[str, ...] = ()  # empty = every category but the product's own
    filters: RequestFilter = field(default_factory=RequestFilter)
    display: str = DEFAULT_DISPLAY


@dataclass(frozen=True, slots=True)
class Anchored:
    """The product a complementary request is about, resolved: its content and what excludes it."""

    product: Product
    product_id: str  # "" for an inline product
    dedup_key: str
    label: str


def searcher(index: VectorIndex, exact: bool = False) -> Search:
    """The index's batched ANN search, or (evaluation) the same engine's brute-force search."""
    if not exact:
        return index.search_batch

    def search(requests: Sequence[SearchRequest]) -> list[list[ScoredItem]]:
        return [index.exact_search(r.vector, r.limit, r.filter) for r in requests]

    return search


def complements(
    model: InferenceModel,
    search: Search,
    anchor: Anchored,
    limit: int,
    filters: RequestFilter,
    deadline: Deadline,
    target_categories: tuple[str, ...] = (),
    display: str = DEFAULT_DISPLAY,
) -> list[Recommendation]:
    """What goes with `anchor.product`: the served complementary list (see the module docstring)."""
    if display not in DISPLAYS:
        raise ValueError(f"display must be one of {DISPLAYS}, got {display!r}")
    leaf = anchor.product.leaf_category
    if leaf and leaf in target_categories:
        raise InvalidRequestError(f"target_categories: {leaf!r} is the product's own category")
    base = excluding_anchor(filters.index, anchor.product_id, anchor.dedup_key)
    if target_categories:
        return _named_targets(model, search, anchor, limit, filters, base, target_categories, deadline)
    vector = model.encode_complementary_queries([anchor.product], [""])[0]
    deadline.check()
    own_leaf = (*base.exclude_leaf_categories, leaf) if leaf else base.exclude_leaf_categories
    f = replace(base, exclude_leaf_categories=own_leaf)
    rescore = _hybrid_scorer(model, anchor.product)
    depth = model.retrieval.rerank_depth if rescore is not None else 0

    def run(fetch: int) -> Candidates:
        wanted = max(fetch, depth)
        hits = search([SearchRequest(vector, wanted, f)])[0]
        if rescore is not None:
            hits = rescore(hits)
        recs = [_recommendation(h, anchor, h.payload.leaf_category) for h in hits]
        if display == "interleave":
            recs = _by_category_round_robin(recs)
        return recs, len(hits) == wanted

    return collect(run, limit, limit, filters.caps, deadline)


def _hybrid_scorer(
    model: InferenceModel, product: Product
) -> Callable[[list[ScoredItem]], list[ScoredItem]] | None:
    """Re-scoring of tower candidates by logit + lexical_weight x TF-IDF cosine (None: off), over the
    card's `lexical_text` of the product and of each candidate's payload (the payload's description
    is the part the towers read; an inline product is cut the same way, so it scores as by id).

    The order is that of q.v / T + w x tfidf; the score returned is the same sum times T / (1 + w T),
    i.e. (q.v + w T x tfidf) / (1 + w T): a weighted mean of two cosines, so the API's contract that
    a score lies in [-1, 1] holds and the order is unchanged.
    """
    weight = model.retrieval.lexical_weight
    lexical = model.lexical
    if lexical is None or weight <= 0:
        return None
    kind = model.retrieval.lexical_text
    query = lexical.vector(lexical_text(kind, product.title, model.indexed_description(product)))
    lexical_share = weight * model.temperature  # w T: the TF-IDF cosine's weight beside q.v's 1

    def rescore(hits: list[ScoredItem]) -> list[ScoredItem]:
        return blend(
            hits,
            lambda h: lexical.cosine_to(query, lexical_text(kind, h.payload.title, h.payload.description)),
            lexical_share,
        )

    return rescore


def _named_targets(
    model: InferenceModel,
    search: Search,
    anchor: Anchored,
    limit: int,
    filters: RequestFilter,
    base: SearchFilter,
    targets: tuple[str, ...],
    deadline: Deadline,
) -> list[Recommendation]:
    vectors = model.encode_complementary_queries([anchor.product] * len(targets), list(targets))
    deadline.check()

    def run(fetch: int) -> Candidates:
        requests = [
            SearchRequest(v, fetch, replace(base, leaf_categories=(t,)))
            for v, t in zip(vectors, targets, strict=True)
        ]
        results = search(requests)
        lists = [
            [_recommendation(h, anchor, t) for h in hits] for hits, t in zip(results, targets, strict=True)
        ]
        return interleave(lists), any(len(hits) == fetch for hits in results)

    return collect(run, limit, math.ceil(limit / len(targets)), filters.caps, deadline)


def _recommendation(hit: ScoredItem, anchor: Anchored, target: str) -> Recommendation:
    return Recommendation(
        hit, Task.COMPLEMENTARY, f"goes with {anchor.label}: {target}", anchor.product_id, target
    )


def _by_category_round_robin(recs: list[Recommendation]) -> list[Recommendation]:
    """Group a ranked list by category (categories in order of their best item), then round-robin."""
    groups: dict[str, list[Recommendation]] = {}
    for r in recs:
        groups.setdefault(r.target_category, []).append(r)
    return interleave(list(groups.values()))


def resolve_anchor(served: ServedModel, ref: AnchorRef) -> Anchored:
    """An indexed product (by id: its content as the index holds it) or an inline one."""
    if ref.product is None:
        item = lookup(served.index, ref.product_id)
        return Anchored(
            product_of(item.product_id, item.payload), ref.product_id, item.payload.dedup_key, ref.label
        )
    return Anchored(ref.product, "", payload_for(ref.product).dedup_key, ref.label)


def complementary(
    served: ServedModel, query: ComplementaryQuery, deadline: Deadline, exact: bool = False
) -> list[Recommendation]:
    """The gRPC method's task logic (ANN), and what the evaluation runs (`exact=True`): resolve the
    anchor, then `complements`."""
    model = require_model(served.model, served.name, "Complementary")
    anchor = resolve_anchor(served, query.anchor)
    return complements(
        model,
        searcher(served.index, exact),
        anchor,
        query.limit,
        query.filters,
        deadline,
        query.target_categories,
        query.display,
    )
