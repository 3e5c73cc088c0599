"""Interleaving ranked lists, choosing clusters, and the caps / de-duplication of a result list."""

from __future__ import annotations

import numpy as np

from vitrine.index.port import ItemPayload, ScoredItem
from vitrine.serving.deadline import Deadline
from vitrine.serving.diversity import interleave, nearest_clusters
from vitrine.serving.results import Recommendation, Task
from vitrine.serving.selection import MAX_FETCH, Caps, collect, first_fetch, select


def rec(pid: str, seller: str = "s", leaf: str = "L", dedup: str = "") -> Recommendation:
    payload = ItemPayload(title=pid, seller=seller, category_path=("Root", leaf), dedup_key=dedup or pid)
    return Recommendation(ScoredItem(pid, 1.0, payload), Task.SIMILAR, "r")


def test_interleave_takes_one_from_each_list_in_turn() -> None:
    assert interleave([[1, 2, 3], [10], [20, 21]]) == [1, 10, 20, 2, 21, 3]
    assert interleave([]) == []
    assert interleave([[], [5]]) == [5]


def test_nearest_clusters_skips_the_nearest_l() -> None:
    centroids = np.array([[0.0, 1.0], [1.0, 0.0], [0.7, 0.7], [-1.0, 0.0]], dtype=np.float32)
    v = np.array([1.0, 0.1], dtype=np.float32)
    assert nearest_clusters(v, centroids, 3) == [1, 2, 0]
    assert nearest_clusters(v, centroids, 2, skip=1) == [2, 0]
    assert nearest_clusters(v, centroids, 9, skip=2) == [0, 3]


def test_select_drops_repeats_duplicates_and_items_over_a_cap() -> None:
    candidates = [
        rec("a", seller="x", leaf="L1"),
        rec("a", seller="x", leaf="L1"),  # the same item from another list
        rec("b", seller="x", leaf="L1", dedup="a"),  # a duplicate of a (same title + brand)
        rec("c", seller="x", leaf="L2"),
        rec("d", seller="x", leaf="L2"),  # third of seller x
        rec("e", seller="y", leaf="L1"),
        rec("f", seller="y", leaf="L1"),  # third of L1
        rec("g", seller="z", leaf="L3"),
    ]
    picked = select(candidates, 10, Caps(max_per_seller=2, max_per_category=2))
    assert [r.product_id for r in picked] == ["a", "c", "e", "g"]
    assert [r.product_id for r in select(candidates, 2, Caps())] == ["a", "c"]


def test_collect_fetches_more_while_caps_leave_the_list_short() -> None:
    # one seller dominates the nearest items: a capped list needs a deeper fetch to fill up
    pool = [rec(f"x{i}", seller="x") for i in range(100)] + [rec(f"o{i}", seller=f"o{i}") for i in range(20)]
    fetches: list[int] = []

    def search(fetch: int) -> tuple[list[Recommendation], bool]:
        fetches.append(fetch)
        return pool[:fetch], fetch < len(pool)

    picked = collect(search, 10, 10, Caps(max_per_seller=1), Deadline.none())
    assert len(picked) == 10 and len({r.item.payload.seller for r in picked}) == 10
    assert fetches == [40, 160]
    # without caps one fetch with a little slack is enough
    fetches.clear()
    assert len(collect(search, 10, 10, Caps(), Deadline.none())) == 10
    assert fetches == [first_fetch(10, Caps())] and fetches[0] > 10


def test_collect_stops_at_the_end_of_the_index_and_at_the_fetch_bound() -> None:
    def search(fetch: int) -> tuple[list[Recommendation], bool]:
        return [rec(f"x{i}", seller="x") for i in range(min(fetch, 5))], fetch <= 5

    assert len(collect(search, 10, 10, Caps(max_per_seller=1), Deadline.none())) == 1
    assert first_fetch(500, Caps(max_per_seller=1)) == MAX_FETCH


def test_caps_are_active_only_when_set() -> None:
    assert not Caps().active
    assert Caps(max_per_category=1).active and Caps(max_per_seller=3).active
