"""The embedded adapter against the real Qdrant Edge engine (in-process, on a temp directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload, SearchFilter, Tombstone

DIM = 16


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def index(tmp_path: Path) -> EdgeIndex:
    ix = EdgeIndex(EdgeIndexConfig(tmp_path / "shard", DIM))
    yield ix
    ix.close()


@pytest.fixture
def items() -> list[IndexedItem]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(40):
        payload = ItemPayload(
            title=f"item {i}",
            seller=f"seller-{i % 3}",
            category_path=("Root", f"Sub{i % 2}", f"Leaf{i % 4}"),
            price=float(i),
            currency="EUR",
            in_stock=i % 5 != 0,
            cluster=i % 6,
            dedup_key=f"key-{i // 2}",  # pairs of duplicates
        )
        out.append(IndexedItem(f"p{i}", 1, _unit(rng), payload))
    return out


def test_search_returns_the_exact_nearest_neighbours(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    query = items[3].vector
    hits = index.search(query, 5, SearchFilter(in_stock_only=False))
    scores = np.stack([i.vector for i in items]) @ query
    expected = [items[j].product_id for j in np.argsort(-scores)[:5]]
    assert [h.product_id for h in hits] == expected
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_filters_are_applied_inside_the_index(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    f = SearchFilter(
        in_stock_only=True,
        categories_include=("Sub1",),
        sellers_exclude=("seller-0",),
        price_min=5,
        price_max=30,
        exclude_ids=("p7",),
    )
    hits = index.search(items[0].vector, 40, f)
    assert hits, "the filter should leave some items"
    by_id = {i.product_id: i for i in items}
    for h in hits:
        p = by_id[h.product_id].payload
        assert p.in_stock and "Sub1" in p.category_path and p.seller != "seller-0" and 5 <= p.price <= 30
        assert h.product_id != "p7"
    expected = {
        i.product_id
        for i in items
        if i.payload.in_stock and "Sub1" in i.payload.category_path and i.payload.seller != "seller-0"
        and 5 <= i.payload.price <= 30 and i.product_id != "p7"
    }
    assert {h.product_id for h in hits} == expected


def test_out_of_stock_items_appear_only_when_asked(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    default = {h.product_id for h in index.search(items[0].vector, 40)}
    everything = {h.product_id for h in index.search(items[0].vector, 40, SearchFilter(in_stock_only=False))}
    out_of_stock = {i.product_id for i in items if not i.payload.in_stock}
    assert not default & out_of_stock
    assert out_of_stock <= everything


def test_cluster_and_dedup_filters(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    hits = index.search(items[0].vector, 40, SearchFilter(in_stock_only=False, clusters=(2, 3)))
    assert hits and all(h.payload.cluster in (2, 3) for h in hits)
    hits = index.search(items[0].vector, 40, SearchFilter(in_stock_only=False, exclude_dedup_keys=("key-0",)))
    assert not {"p0", "p1"} & {h.product_id for h in hits}


def test_older_versions_never_overwrite_newer_ones(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    newer = IndexedItem("p1", 5, items[2].vector, ItemPayload(title="v5"))
    older = IndexedItem("p1", 3, items[3].vector, ItemPayload(title="v3"))
    assert index.apply([newer]).written == 1
    result = index.apply([older])
    assert result.stale == 1 and result.written == 0 and result.stale_ids == ["p1"]
    assert index.get(["p1"])["p1"].payload.title == "v5"
    assert index.versions(["p1"]) == {"p1": 5}


def test_duplicate_delivery_is_harmless(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    again = index.apply(items)
    assert again.written == 0 and again.stale == len(items)
    assert index.count() == len(items)


def test_delete_is_a_versioned_tombstone(index: EdgeIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    assert index.apply([], [Tombstone("p4", 2)]).deleted == 1
    assert "p4" not in index.get(["p4"])
    assert index.count() == len(items) - 1
    assert all(h.product_id != "p4" for h in index.search(items[4].vector, 40, SearchFilter(in_stock_only=False)))
    # an older upsert arriving after the delete must not resurrect the product
    assert index.apply([IndexedItem("p4", 1, items[4].vector, items[4].payload)]).stale == 1
    assert "p4" not in index.get(["p4"])
    # a newer one does
    assert index.apply([IndexedItem("p4", 3, items[4].vector, items[4].payload)]).written == 1
    assert "p4" in index.get(["p4"])


def test_newest_change_wins_within_one_batch(index: EdgeIndex, items: list[IndexedItem]) -> None:
    v = items[0].vector
    result = index.apply(
        [IndexedItem("x", 1, v, ItemPayload(title="one")), IndexedItem("x", 3, v, ItemPayload(title="three"))],
        [Tombstone("x", 2)],
    )
    assert result.written == 1 and result.deleted == 0
    assert index.get(["x"])["x"].payload.title == "three"


def test_shard_survives_close_and_reopen(tmp_path: Path, items: list[IndexedItem]) -> None:
    path = tmp_path / "shard"
    ix = EdgeIndex(EdgeIndexConfig(path, DIM))
    ix.apply(items, [Tombstone("p0", 9)])
    ix.close()
    reopened = EdgeIndex(EdgeIndexConfig(path, DIM))
    try:
        assert reopened.count() == len(items) - 1
        assert reopened.versions(["p0", "p1"]) == {"p0": 9, "p1": 1}
    finally:
        reopened.close()


def test_wrong_dimension_is_rejected(index: EdgeIndex) -> None:
    from vitrine.errors import IndexBackendError

    with pytest.raises(IndexBackendError, match="shape"):
        index.apply([IndexedItem("bad", 1, np.ones(DIM + 1, dtype=np.float32), ItemPayload())])


def test_hnsw_search_matches_exact_search_after_optimisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ix = EdgeIndex(EdgeIndexConfig(tmp_path / "big", DIM, full_scan_threshold=100))
    try:
        ix.apply([IndexedItem(f"q{i}", 1, _unit(rng), ItemPayload()) for i in range(3000)])
        ix.optimize()
        queries = [_unit(rng) for _ in range(20)]
        recall = np.mean(
            [
                len({h.product_id for h in ix.search(q, 10)} & {h.product_id for h in ix.exact_search(q, 10)}) / 10
                for q in queries
            ]
        )
        assert recall >= 0.95
    finally:
        ix.close()
