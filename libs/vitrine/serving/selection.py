"""Business filters on top of the index's: the caps per seller / category, de-duplication, and the
over-fetching that keeps a capped list full.

The index applies everything it can (stock, price, categories, sellers, excluded ids and duplicates of
the anchor) inside its payload indexes. What depends on the list as a whole cannot be pushed down: at
most N items per seller or leaf category, and no two items that are duplicates of each other. Those
are applied here, walking the ranked (or interleaved) candidates in order; when that leaves the list
short while the index had more, the search is repeated with a larger fetch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vitrine.index.port import SearchFilter
from vitrine.serving.deadline import Deadline
from vitrine.serving.results import Recommendation

OVERFETCH = 4  # candidates per wanted item when caps are set
SLACK = 5  # extra candidates without caps, for the duplicates dropped among the results
MAX_FETCH = 2_000  # per searched list: bounds the HNSW effort a request may cause


@dataclass(frozen=True, slots=True)
class Caps:
    max_per_seller: int = 0  # 0 = no cap
    max_per_category: int = 0  # leaf category

    @property
    def active(self) -> bool:
        return self.max_per_seller > 0 or self.max_per_category > 0


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """A request's filters: the part the index applies, and the caps applied to the ranked list."""

    index: SearchFilter = field(default_factory=SearchFilter)
    caps: Caps = field(default_factory=Caps)


def select(candidates: Iterable[Recommendation], limit: int, caps: Caps) -> list[Recommendation]:
    """The first `limit` candidates, in order, skipping repeats (same id or same dedup key) and items
    over a cap."""
    picked: list[Recommendation] = []
    ids: set[str] = set()
    keys: set[str] = set()
    per_seller: Counter[str] = Counter()
    per_category: Counter[str] = Counter()
    for c in candidates:
        payload = c.item.payload
        if c.product_id in ids or (payload.dedup_key and payload.dedup_key in keys):
            continue
        if caps.max_per_seller and per_seller[payload.seller] >= caps.max_per_seller:
            continue
        if caps.max_per_category and per_category[payload.leaf_category] >= caps.max_per_category:
            continue
        picked.append(c)
        ids.add(c.product_id)
        if payload.dedup_key:
            keys.add(payload.dedup_key)
        per_seller[payload.seller] += 1
        per_category[payload.leaf_category] += 1
        if len(picked) == limit:
            break
    return picked


def first_fetch(per_list: int, caps: Caps) -> int:
    """How many candidates to ask each searched list for, for `per_list` wanted items from it."""
    wanted = per_list * OVERFETCH if caps.active else per_list + SLACK
    return max(1, min(MAX_FETCH, wanted))


Candidates = tuple[list[Recommendation], bool]  # ordered candidates, and "a list may hold more"


def collect(
    search: Callable[[int], Candidates], limit: int, per_list: int, caps: Caps, deadline: Deadline
) -> list[Recommendation]:
    """Run `search(fetch)` (fetch = candidates per list) and select; while the list comes out short
    and some list was cut off at `fetch`, search again with four times the fetch (up to MAX_FETCH)."""
    fetch = first_fetch(per_list, caps)
    while True:
        candidates, more = search(fetch)
        picked = select(candidates, limit, caps)
        if len(picked) >= limit or not more or fetch >= MAX_FETCH:
            return picked
        deadline.check()
        fetch = min(MAX_FETCH, fetch * OVERFETCH)
