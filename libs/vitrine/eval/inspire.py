"""Offline evaluation of Inspire from a browsing history, through the served code path.

Each user's time-ordered history (`vitrine.data.histories`) is cut in two: the first half is the
request history (given to `inspire` most recent first, as the gRPC request's parser hands it
over), the rest are the items Inspire should find. The served list is what `vitrine.serving.inspire.inspire` returns for that request, with the
API's default knobs unless told otherwise, from an exact Qdrant Edge index of the catalogue
(`vitrine.eval.served`): the function the gRPC method runs, exact instead of ANN.

Both strategies are measured (clusters, MMR) against three baselines on the same requests, each
excluding the request's items as Inspire does:

- `popularity`: items by how many *other* users have them (leave-this-user-out counts);
- `last_item_knn`: Similar (`vitrine.serving.similar.similar`, the served path) on the most recent
  request item;
- `random`: a seeded shuffle of the catalogue.

Per list: recall@10, recall@50 and the diversity measures of `vitrine.eval.lists` (categories@10,
ild@10, novel_share@10 against the request's leaf categories); coverage over all lists.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.api.requests import RequestLimits
from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset
from vitrine.data.histories import UserHistory, load_user_histories, split_history, user_split
from vitrine.eval.lists import LIST_LENGTH, MetricMeans, diversity, relevance
from vitrine.eval.served import exact_served_model
from vitrine.index.port import SearchFilter
from vitrine.model.inference import InferenceModel
from vitrine.serving.anchors import AnchorRef
from vitrine.serving.deadline import Deadline
from vitrine.serving.inspire import InspireQuery, Strategy, inspire
from vitrine.serving.registry import ServedModel
from vitrine.serving.selection import RequestFilter
from vitrine.serving.similar import SimilarQuery, similar

log = logging.getLogger(__name__)

METRICS = ("recall@10", "recall@50", "categories@10", "ild@10", "coverage", "novel_share@10")
BASELINES = ("popularity", "last_item_knn", "random")


@dataclass(frozen=True, slots=True)
class InspireKnobs:
    """Inspire's diversity knobs; the defaults are what the API serves when a request sets none."""

    nearest_clusters: int = RequestLimits().default_clusters
    skip_clusters: int = 0
    max_anchors: int = RequestLimits().default_anchors
    mmr_diversity: float = RequestLimits().default_mmr_diversity

    def query(self, history: Sequence[str], strategy: Strategy) -> InspireQuery:
        return InspireQuery(
            history=tuple(history),
            limit=LIST_LENGTH,
            strategy=strategy,
            nearest_clusters=self.nearest_clusters,
            skip_clusters=self.skip_clusters,
            max_anchors=self.max_anchors,
            mmr_diversity=self.mmr_diversity,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nearest_clusters": self.nearest_clusters,
            "skip_clusters": self.skip_clusters,
            "max_anchors": self.max_anchors,
            "mmr_diversity": self.mmr_diversity,
        }


@dataclass(frozen=True, slots=True)
class InspireCase:
    user_id: str
    request: tuple[str, ...]  # oldest first
    answer: tuple[str, ...]

    @property
    def history(self) -> tuple[str, ...]:
        """As `InspireQuery` takes it: most recent first (the gRPC request lists views oldest first)."""
        return tuple(reversed(self.request))


@dataclass(slots=True)
class InspireResult:
    model: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, float]]
    users: int
    knobs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "baselines": self.baselines, "users": self.users}


def inspire_cases(histories: Sequence[UserHistory], users: str, seed: int) -> list[InspireCase]:
    """The requests of the `users` split ("val", "test" or "all"); users with one item have no answer."""
    cases = []
    for h in histories:
        if users != "all" and user_split(h.user_id, seed) != users:
            continue
        request, answer = split_history(h.items)
        if answer:
            cases.append(InspireCase(h.user_id, request, answer))
    return cases


Ranker = Callable[[InspireCase], list[str]]


def served_ranker(served: ServedModel, strategy: Strategy, knobs: InspireKnobs) -> Ranker:
    def rank(case: InspireCase) -> list[str]:
        recs = inspire(served, knobs.query(case.history, strategy), Deadline.none())
        return [r.product_id for r in recs]

    return rank


def _last_item_knn(served: ServedModel) -> Ranker:
    def rank(case: InspireCase) -> list[str]:
        # Similar on the most recent item, not showing what the user has already seen (as Inspire)
        filters = RequestFilter(index=SearchFilter(exclude_ids=case.request))
        query = SimilarQuery(AnchorRef(product_id=case.request[-1]), LIST_LENGTH, filters)
        return [r.product_id for r in similar(served, query, Deadline.none())]

    return rank


def _popularity(histories: Sequence[UserHistory], ids: Sequence[str]) -> Ranker:
    counts = Counter(i for h in histories for i in h.items)
    own = {h.user_id: set(h.items) for h in histories}
    position = {pid: n for n, pid in enumerate(ids)}

    def rank(case: InspireCase) -> list[str]:
        mine, seen = own.get(case.user_id, set()), set(case.request)
        # this user's own items do not count towards their popularity; ties in catalogue order
        score = {pid: c - (pid in mine) for pid, c in counts.items() if pid not in seen}
        ranked = sorted((p for p, c in score.items() if c > 0), key=lambda p: (-score[p], position[p]))
        return ranked[:LIST_LENGTH]

    return rank


def _random(ids: Sequence[str], seed: int) -> Ranker:
    def rank(case: InspireCase) -> list[str]:
        rng = np.random.default_rng([seed, *case.user_id.encode()])
        seen = set(case.request)
        picked: list[str] = []
        for i in rng.permutation(len(ids)):
            if ids[i] not in seen:
                picked.append(ids[i])
                if len(picked) == LIST_LENGTH:
                    break
        return picked

    return rank


def _measure(
    rank: Ranker, cases: Sequence[InspireCase], products: Sequence[Product], vectors: dict[str, np.ndarray]
) -> dict[str, float]:
    leaves = {p.product_id: p.leaf_category for p in products}
    means = MetricMeans(len(products))
    for case in cases:
        ranked = rank(case)
        rel = relevance(ranked, case.answer)
        values = {
            "recall@10": rel["recall@10"],
            "recall@50": rel["recall@50"],
            **diversity(ranked, leaves, vectors, {leaves[i] for i in case.request}),
        }
        means.add(ranked, values)
    out = means.means(with_coverage=True)
    return {k: out[k] for k in METRICS}


def evaluate_inspire(
    model: InferenceModel,
    dataset: Dataset,
    folder: Path,
    users: str = "test",
    seed: int = 13,
    knobs: InspireKnobs | None = None,
    baselines: Sequence[str] = BASELINES,
) -> InspireResult:
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    if users not in ("val", "test", "all"):
        raise ValueError(f"users must be val, test or all, got {users!r}")
    knobs = knobs or InspireKnobs()
    products = dataset.products
    ids = [p.product_id for p in products]
    histories, report = load_user_histories(folder, set(ids))
    log.info("%s", report.summary())
    cases = inspire_cases(histories, users, seed)
    if not cases:
        raise ValueError(f"no {users} user has two or more catalogue items")
    vectors = dict(zip(ids, model.encode_items(products), strict=True))
    result = InspireResult({}, {}, len(cases), knobs.to_dict())
    with exact_served_model(model, products) as served:
        for strategy in (Strategy.CLUSTERS, Strategy.MMR):
            log.info("inspire %s on %d users", strategy.value, len(cases))
            result.model[strategy.value] = _measure(
                served_ranker(served, strategy, knobs), cases, products, vectors
            )
        rankers: dict[str, Ranker] = {
            "popularity": _popularity(histories, ids),
            "last_item_knn": _last_item_knn(served),
            "random": _random(ids, seed),
        }
        for name in baselines:
            result.baselines[name] = _measure(rankers[name], cases, products, vectors)
    return result


def with_knobs(knobs: InspireKnobs, **changes: Any) -> InspireKnobs:
    return replace(knobs, **{k: v for k, v in changes.items() if v is not None})
