"""Both index adapters, through the port, against the real engines: Qdrant Edge (in-process shard) and
qdrant-client's in-process Qdrant (the server adapter's code path), each opened by `open_index`.
Every behavioural test runs on both; `test_adapters_are_congruent` runs the same calls on both and
compares the answers, and `test_adapters_fail_alike` the same failing calls and compares the
exceptions, the way qdrant-client's own congruence tests compare its local and remote modes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vitrine.errors import IndexBackendError
from vitrine.index import open_index as open_configured
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import (
    IndexedItem,
    ItemPayload,
    Mmr,
    SearchFilter,
    SearchRequest,
    Tombstone,
    VectorIndex,
)
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.index.settings import IndexSettings

DIM = 16


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def open_index(kind: str, path: Path, dim: int = DIM) -> VectorIndex:
    if kind == "edge":
        return open_configured(IndexSettings(index_mode="embedded", index_path=path), dim=dim, name="items")
    settings = IndexSettings(index_mode="server", qdrant_url=str(path))  # qdrant-client in-process
    return open_configured(settings, dim=dim, name="items")


@pytest.fixture(params=["edge", "server"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def index(kind: str, tmp_path: Path) -> VectorIndex:
    ix = open_index(kind, tmp_path / "index")
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
            # what a complementary request by id rebuilds the product from (accents, newlines kept)
            description="" if i % 7 == 0 else f"Beschreibung {i}: crème brûlée\nsecond line " * (1 + i % 3),
        )
        out.append(IndexedItem(f"p{i}", 1, _unit(rng), payload))
    return out


def test_search_returns_the_exact_nearest_neighbours(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    query = items[3].vector
    hits = index.search(query, 5, SearchFilter(in_stock_only=False))
    scores = np.stack([i.vector for i in items]) @ query
    expected = [items[j].product_id for j in np.argsort(-scores)[:5]]
    assert [h.product_id for h in hits] == expected
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_filters_are_applied_inside_the_index(index: VectorIndex, items: list[IndexedItem]) -> None:
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
        if i.payload.in_stock
        and "Sub1" in i.payload.category_path
        and i.payload.seller != "seller-0"
        and 5 <= i.payload.price <= 30
        and i.product_id != "p7"
    }
    assert {h.product_id for h in hits} == expected


def test_payloads_come_back_as_written(index: VectorIndex, items: list[IndexedItem]) -> None:
    """Catches an adapter (or `ItemPayload.to_dict/from_dict`) that drops a payload field: the
    description is what a complementary request by id encodes the product from."""
    index.apply(items)
    written = {i.product_id: i.payload for i in items}
    assert {k: v.payload for k, v in index.get(list(written)).items()} == written
    hits = index.exact_search(items[5].vector, 40, SearchFilter(in_stock_only=False))
    assert len(hits) == 40 and all(h.payload == written[h.product_id] for h in hits)
    assert any(h.payload.description for h in hits)


def test_out_of_stock_items_appear_only_when_asked(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    default = {h.product_id for h in index.search(items[0].vector, 40)}
    everything = {h.product_id for h in index.search(items[0].vector, 40, SearchFilter(in_stock_only=False))}
    out_of_stock = {i.product_id for i in items if not i.payload.in_stock}
    assert not default & out_of_stock
    assert out_of_stock <= everything


def test_cluster_and_dedup_filters(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    hits = index.search(items[0].vector, 40, SearchFilter(in_stock_only=False, clusters=(2, 3)))
    assert hits and all(h.payload.cluster in (2, 3) for h in hits)
    hits = index.search(items[0].vector, 40, SearchFilter(in_stock_only=False, exclude_dedup_keys=("key-0",)))
    assert not {"p0", "p1"} & {h.product_id for h in hits}


def test_leaf_category_filter_matches_the_leaf_only(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    hits = index.search(
        items[0].vector, 40, SearchFilter(in_stock_only=False, leaf_categories=("Leaf1", "Leaf2"))
    )
    assert {h.payload.leaf_category for h in hits} == {"Leaf1", "Leaf2"}
    assert len(hits) == 20
    # "Sub1" is a level of the path, not a leaf: nothing matches
    assert (
        index.search(items[0].vector, 40, SearchFilter(in_stock_only=False, leaf_categories=("Sub1",))) == []
    )


def test_search_batch_answers_each_request_like_search(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    filters = [SearchFilter(), SearchFilter(in_stock_only=False, leaf_categories=("Leaf3",)), None]
    requests = [SearchRequest(items[i].vector, 5 + i, filters[i]) for i in range(3)]
    batched = index.search_batch(requests)
    assert len(batched) == 3
    for request, hits in zip(requests, batched, strict=True):
        single = index.search(request.vector, request.limit, request.filter)
        assert [h.product_id for h in hits] == [h.product_id for h in single]
    assert index.search_batch([]) == []


def test_mmr_trades_relevance_for_diversity(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    query = items[0].vector
    vectors = {i.product_id: i.vector for i in items}
    f = SearchFilter(in_stock_only=False)
    nearest, diverse, relevance_only = index.search_batch(
        [
            SearchRequest(query, 8, f),
            SearchRequest(query, 8, f, Mmr(diversity=0.9, candidates=40)),
            SearchRequest(query, 8, f, Mmr(diversity=0.0, candidates=40)),
        ]
    )

    def mean_pairwise(hits: list) -> float:
        m = np.stack([vectors[h.product_id] for h in hits])
        sims = m @ m.T
        return float((sims.sum() - np.trace(sims)) / (len(hits) * (len(hits) - 1)))

    assert diverse[0].product_id == nearest[0].product_id == "p0"  # MMR starts from the most relevant
    assert mean_pairwise(diverse) < mean_pairwise(nearest)
    assert [h.product_id for h in relevance_only] == [h.product_id for h in nearest]
    assert all(h.score == pytest.approx(float(vectors[h.product_id] @ query), abs=1e-4) for h in diverse)


def test_mmr_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="diversity"):
        Mmr(diversity=1.5)
    with pytest.raises(ValueError, match="candidates"):
        Mmr(candidates=0)


def test_older_versions_never_overwrite_newer_ones(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    newer = IndexedItem("p1", 5, items[2].vector, ItemPayload(title="v5"))
    older = IndexedItem("p1", 3, items[3].vector, ItemPayload(title="v3"))
    assert index.apply([newer]).written == 1
    result = index.apply([older])
    assert result.stale == 1 and result.written == 0 and result.stale_ids == ["p1"]
    assert index.get(["p1"])["p1"].payload.title == "v5"
    assert index.versions(["p1"]) == {"p1": 5}


def test_duplicate_delivery_is_harmless(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    again = index.apply(items)
    assert again.written == 0 and again.stale == len(items)
    assert index.count() == len(items)


def test_delete_is_a_versioned_tombstone(index: VectorIndex, items: list[IndexedItem]) -> None:
    index.apply(items)
    assert index.apply([Tombstone("p4", 2)]).deleted == 1
    assert "p4" not in index.get(["p4"])
    assert index.count() == len(items) - 1
    assert all(
        h.product_id != "p4" for h in index.search(items[4].vector, 40, SearchFilter(in_stock_only=False))
    )
    # an older upsert arriving after the delete must not resurrect the product
    assert index.apply([IndexedItem("p4", 1, items[4].vector, items[4].payload)]).stale == 1
    assert "p4" not in index.get(["p4"])
    # a newer one does
    assert index.apply([IndexedItem("p4", 3, items[4].vector, items[4].payload)]).written == 1
    assert "p4" in index.get(["p4"])


def test_newest_change_wins_within_one_batch(index: VectorIndex, items: list[IndexedItem]) -> None:
    v = items[0].vector
    result = index.apply(
        [
            IndexedItem("x", 1, v, ItemPayload(title="one")),
            IndexedItem("x", 3, v, ItemPayload(title="three")),
            Tombstone("x", 2),
        ]
    )
    assert result.written == 1 and result.deleted == 0
    assert index.get(["x"])["x"].payload.title == "three"


def test_index_survives_close_and_reopen(kind: str, tmp_path: Path, items: list[IndexedItem]) -> None:
    path = tmp_path / "index"
    ix = open_index(kind, path)
    ix.apply([*items, Tombstone("p0", 9)])
    ix.close()
    reopened = open_index(kind, path)
    try:
        assert reopened.count() == len(items) - 1
        assert reopened.versions(["p0", "p1"]) == {"p0": 9, "p1": 1}
    finally:
        reopened.close()


def test_server_adapter_switches_an_alias_between_collections(
    tmp_path: Path, items: list[IndexedItem]
) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    old = QdrantServerIndex(QdrantServerConfig(":memory:", "items-v1", DIM), client=client)
    new = QdrantServerIndex(QdrantServerConfig(":memory:", "items-v2", DIM), client=client)
    old.apply(items[:10])
    new.apply(items)
    old.point_alias("items")
    reader = QdrantServerIndex(QdrantServerConfig(":memory:", "items", DIM), client=client, create=False)
    assert reader.count() == 10
    new.point_alias("items")
    assert reader.count() == len(items)


def test_wrong_dimension_is_rejected(index: VectorIndex) -> None:
    with pytest.raises(IndexBackendError, match="shape"):
        index.apply([IndexedItem("bad", 1, np.ones(DIM + 1, dtype=np.float32), ItemPayload())])


def test_adapters_are_congruent(tmp_path: Path, items: list[IndexedItem]) -> None:
    edge, server = open_index("edge", tmp_path / "e"), open_index("server", tmp_path / "s")
    try:
        for ix in (edge, server):
            ix.apply([*items[:30], Tombstone("p3", 2)])
            ix.apply([*items[25:], Tombstone("p26", 1)])  # p26: stale delete (version 1 already stored)
        filters = [
            SearchFilter(),
            SearchFilter(in_stock_only=False, categories_exclude=("Leaf1",), price_max=25),
            SearchFilter(sellers_include=("seller-1", "seller-2"), clusters=(0, 1, 2), exclude_ids=("p7",)),
        ]
        for query in items[:5]:
            for f in filters:
                a = [(h.product_id, round(h.score, 4)) for h in edge.search(query.vector, 12, f)]
                b = [(h.product_id, round(h.score, 4)) for h in server.search(query.vector, 12, f)]
                assert a == b
        batch = [
            SearchRequest(items[0].vector, 10, SearchFilter(leaf_categories=("Leaf0", "Leaf3"))),
            SearchRequest(items[1].vector, 10, filters[2], Mmr(diversity=0.7, candidates=30)),
            SearchRequest(items[2].vector, 6, filters[1], Mmr(diversity=0.2, candidates=12)),
        ]
        a_batch = [[(h.product_id, round(h.score, 4)) for h in hits] for hits in edge.search_batch(batch)]
        b_batch = [[(h.product_id, round(h.score, 4)) for h in hits] for hits in server.search_batch(batch)]
        assert a_batch == b_batch and all(a_batch)
        ids = [i.product_id for i in items] + ["missing"]
        assert edge.versions(ids) == server.versions(ids)
        assert edge.count() == server.count() == len(items) - 1
        assert sorted(edge.get(ids)) == sorted(server.get(ids))
        # the payloads themselves, description included, from get and from search
        assert {k: v.payload for k, v in edge.get(ids).items()} == {
            k: v.payload for k, v in server.get(ids).items()
        }
        f = SearchFilter(in_stock_only=False)
        assert [h.payload for h in edge.search(items[0].vector, 40, f)] == [
            h.payload for h in server.search(items[0].vector, 40, f)
        ]
    finally:
        edge.close()
        server.close()


FAILURES = {
    # the engines disagree here on their own (Qdrant Edge answers [] or raises a bare Exception,
    # qdrant-client raises its own errors), so the shared base decides
    "upsert of a vector of the wrong size": lambda ix, v: ix.apply(
        [IndexedItem("bad", 1, np.ones(DIM + 1, dtype=np.float32), ItemPayload())]
    ),
    "upsert of a vector with NaNs": lambda ix, v: ix.apply(
        [IndexedItem("nan", 1, np.full(DIM, np.nan, dtype=np.float32), ItemPayload())]
    ),
    "query of the wrong size": lambda ix, v: ix.search(np.ones(DIM + 1, dtype=np.float32), 3),
    "exact query of the wrong size": lambda ix, v: ix.exact_search(np.ones(DIM - 1, dtype=np.float32), 3),
    "query with NaNs": lambda ix, v: ix.search(np.full(DIM, np.nan, dtype=np.float32), 3),
    "batch with one bad query": lambda ix, v: ix.search_batch(
        [SearchRequest(v, 3), SearchRequest(np.ones(3, dtype=np.float32), 3)]
    ),
    "limit 0": lambda ix, v: ix.search(v, 0),
    "negative limit": lambda ix, v: ix.search_batch([SearchRequest(v, -1)]),
}
AFTER_CLOSE = {
    "search": lambda ix, v: ix.search(v, 3),
    "count": lambda ix, v: ix.count(),
    "versions": lambda ix, v: ix.versions(["p1"]),
    "get": lambda ix, v: ix.get(["p1"]),
    "apply": lambda ix, v: ix.apply([IndexedItem("late", 1, v, ItemPayload())]),
    "optimize": lambda ix, v: ix.optimize(),
    "flush": lambda ix, v: ix.flush(),
}


def _failure(call, ix: VectorIndex, vector: np.ndarray) -> tuple[str, str] | None:
    try:
        call(ix, vector)
    except Exception as e:
        return type(e).__name__, "closed" if "closed" in str(e) else ""
    return None


def test_adapters_fail_alike(tmp_path: Path, items: list[IndexedItem]) -> None:
    """The same failure raises the same exception type from both adapters (an engine's own error
    never escapes), and leaves the index as it was."""
    edge, server = open_index("edge", tmp_path / "e"), open_index("server", tmp_path / "s")
    vector = items[0].vector
    try:
        for ix in (edge, server):
            ix.apply(items)
        for what, call in FAILURES.items():
            a, b = _failure(call, edge, vector), _failure(call, server, vector)
            assert a is not None and a == b, f"{what}: edge {a}, server {b}"
            assert a[0] in ("IndexBackendError", "ValueError"), f"{what}: {a}"
        assert edge.count() == server.count() == len(items)
    finally:
        edge.close()
        server.close()
    for what, call in AFTER_CLOSE.items():
        a, b = _failure(call, edge, vector), _failure(call, server, vector)
        assert a == b == ("IndexBackendError", "closed"), f"{what} after close: edge {a}, server {b}"
    edge.close()  # closing again does nothing, on both
    server.close()


def test_a_missing_collection_is_an_index_error(tmp_path: Path) -> None:
    settings = IndexSettings(index_mode="server", qdrant_url=str(tmp_path / "s"))
    reader = open_configured(settings, dim=DIM, name="never-created", create=False)
    try:
        for call in (reader.count, lambda: reader.search(np.ones(DIM, np.float32), 3)):
            with pytest.raises(IndexBackendError, match="never-created"):
                call()
    finally:
        reader.close()


def test_an_edge_shard_has_no_aliases(tmp_path: Path) -> None:
    edge = open_index("edge", tmp_path / "e")
    try:
        with pytest.raises(IndexBackendError, match="aliases"):
            edge.point_alias("vitrine")
    finally:
        edge.close()


def test_open_index_picks_the_adapter_from_the_mode(tmp_path: Path) -> None:
    embedded = open_configured(IndexSettings(index_path=tmp_path / "shards"), dim=DIM, name="m-v1")
    server = open_configured(IndexSettings(index_mode="server", qdrant_url=":memory:"), dim=DIM, name="c")
    try:
        assert isinstance(embedded, EdgeIndex) and (tmp_path / "shards" / "m-v1").is_dir()
        assert isinstance(server, QdrantServerIndex) and server.collection == "c"
    finally:
        embedded.close()
        server.close()
    with pytest.raises(ValueError, match="never dropped"):
        open_configured(
            IndexSettings(index_mode="server", qdrant_url=":memory:"), dim=DIM, name="c", fresh=True
        )


def test_hnsw_search_matches_exact_search_after_optimisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ix = EdgeIndex(
        EdgeIndexConfig(tmp_path / "big", DIM, full_scan_points=100, indexing_threshold_points=500)
    )
    try:
        ix.apply([IndexedItem(f"q{i}", 1, _unit(rng), ItemPayload()) for i in range(3000)])
        ix.optimize()
        assert ix.indexed_points() == 3000
        queries = [_unit(rng) for _ in range(20)]
        recall = np.mean(
            [
                len({h.product_id for h in ix.search(q, 10)} & {h.product_id for h in ix.exact_search(q, 10)})
                / 10
                for q in queries
            ]
        )
        assert recall >= 0.95
    finally:
        ix.close()


def test_filtered_hnsw_search_stays_exact_enough_inside_one_small_category(tmp_path: Path) -> None:
    # 5% selectivity, well above the full-scan threshold: the query walks the graph, which only
    # stays connected inside the category thanks to the category's own HNSW links (payload_m)
    rng = np.random.default_rng(2)
    ix = EdgeIndex(
        EdgeIndexConfig(tmp_path / "filtered", DIM, full_scan_points=50, indexing_threshold_points=500)
    )
    try:
        ix.apply(
            [
                IndexedItem(f"f{i}", 1, _unit(rng), ItemPayload(category_path=("Root", f"Leaf{i % 20}")))
                for i in range(4000)
            ]
        )
        ix.optimize()
        assert ix.indexed_points() == 4000  # the graph exists: this is not an exact scan
        recalls = []
        for i in range(40):
            q, f = _unit(rng), SearchFilter(leaf_categories=(f"Leaf{i % 20}",), in_stock_only=False)
            ann = {h.product_id for h in ix.search(q, 10, f)}
            exact = {h.product_id for h in ix.exact_search(q, 10, f)}
            assert all(int(p[1:]) % 20 == i % 20 for p in ann)
            recalls.append(len(ann & exact) / 10)
        assert np.mean(recalls) >= 0.95
    finally:
        ix.close()


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def test_superseded_versions_do_not_accumulate_when_the_index_is_optimized_periodically(
    tmp_path: Path,
) -> None:
    # a replica applies an endless stream of updates to the same products: its storage must stay flat
    rng = np.random.default_rng(3)
    ix = EdgeIndex(EdgeIndexConfig(tmp_path / "churn", DIM, wal=False))
    try:
        sizes = {}
        for version in range(1, 61):
            ix.apply(
                [IndexedItem(f"c{i}", version, _unit(rng), ItemPayload(title="t" * 200)) for i in range(500)]
            )
            ix.optimize()
            if version in (10, 60):
                sizes[version] = _disk_bytes(tmp_path / "churn")
        assert ix.count() == 500
        # without the flush inside optimize() the storage grew 5x over these rounds (~0.35 KB/update)
        assert sizes[60] <= 1.5 * sizes[10], sizes
    finally:
        ix.close()


def _edge_search_cpu_s() -> float:
    """CPU seconds of this process's Qdrant Edge search-pool threads (named edge-search-N)."""
    total = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith("edge-search"):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread CPU from /proc (Linux)")
def test_an_embedded_shard_searches_in_the_calling_thread_unless_given_a_pool(
    tmp_path: Path, items: list[IndexedItem]
) -> None:
    # issue 19: a pool per shard handed every query to its own threads, which cost the serving path
    # more CPU than the search; the default now searches in the caller (the gRPC handler thread).
    # Control: index_search_threads=0 (Qdrant Edge's pool) does the same searches on edge-search threads.
    spent = {}
    for threads in (1, 0):
        settings = IndexSettings(
            index_mode="embedded", index_path=tmp_path / str(threads), index_search_threads=threads
        )
        ix = open_configured(settings, dim=DIM, name="items")
        try:
            ix.apply(items)
            before = _edge_search_cpu_s()
            for k in range(3000):
                assert len(ix.search(items[k % len(items)].vector, 5)) == 5
            spent[threads] = _edge_search_cpu_s() - before
        finally:
            ix.close()
    assert spent[1] <= 0.02, f"searches ran on the pool: {spent}"
    assert spent[0] > 0.02, f"control: Qdrant Edge's own pool did no work: {spent}"


def test_a_late_write_of_an_older_version_never_moves_a_server_point_backwards(tmp_path: Path) -> None:
    """The zombie in server mode: a writer read the stored versions (none), stalled while another
    writer stored newer ones, then wrote its older changes against what it had read. The server
    adapter's write is conditional on the version, so Qdrant keeps the newer points. Control: the
    same late write as a plain upsert (what the adapter did before, a02873d) moves them back, which
    is what this test's oracle catches."""
    rng = np.random.default_rng(3)
    late = [IndexedItem(f"p{i}", 2, _unit(rng), ItemPayload(title=f"p{i} v2")) for i in range(20)]
    newer = [IndexedItem(f"p{i}", 3, _unit(rng), ItemPayload(title=f"p{i} v3")) for i in range(10)]
    index = open_index("server", tmp_path / "server")
    stale_read = index.versions([c.product_id for c in late])  # read before the other writer wrote
    assert stale_read == {}
    index.apply(newer)
    index.apply(late, stale_read)  # the zombie's write, planned against what it had read
    assert index.versions([c.product_id for c in late]) == {f"p{i}": 3 if i < 10 else 2 for i in range(20)}
    titles = {pid: item.payload.title for pid, item in index.get([f"p{i}" for i in range(10)]).items()}
    assert titles == {f"p{i}": f"p{i} v3" for i in range(10)}

    # the control: an unconditional upsert of the same late points, through the same client
    assert isinstance(index, QdrantServerIndex)
    from qdrant_client import models

    points = [index._point(c) for c in late]
    index.client.upsert(
        index.collection,
        points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points],
        wait=True,
    )
    assert index.versions(["p0"]) == {"p0": 2}, "the control must show the defect the test guards"


def test_server_adapter_start_survives_a_create_that_timed_out_or_raced_another_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Catches an encoder that exits at start because creating its collection timed out: two
    encoders started together against a busy server (CI: "cannot create Qdrant collection: timed
    out", exit 2). The create here happens on the engine but the client sees a timeout, as when the
    reply is late or another replica's create won; before the retry, the first attempt's error was
    final."""
    from qdrant_client import QdrantClient

    import vitrine.index.server as server

    class LateReplyClient:
        def __init__(self) -> None:
            self.engine = QdrantClient(location=":memory:")
            self.timeouts = 1

        def create_collection(self, *args: object, **kwargs: object) -> object:
            result = self.engine.create_collection(*args, **kwargs)  # type: ignore[arg-type]
            if self.timeouts:
                self.timeouts -= 1
                raise TimeoutError("timed out")
            return result

        def __getattr__(self, name: str) -> object:
            return getattr(self.engine, name)

    waits: list[float] = []
    monkeypatch.setattr(server.time, "sleep", waits.append)
    client = LateReplyClient()
    index = QdrantServerIndex(QdrantServerConfig(":memory:", "items", DIM), client=client)
    assert waits == [1] and client.engine.collection_exists("items") and index.count() == 0

    # a server that stays down: a clear error after the configured attempts, not a hang
    class DownClient:
        def collection_exists(self, name: str) -> bool:
            raise TimeoutError("timed out")

    down = DownClient()
    waits.clear()
    with pytest.raises(IndexBackendError, match="cannot create Qdrant collection 'items'"):
        QdrantServerIndex(QdrantServerConfig(":memory:", "items", DIM, create_attempts=3), client=down)
    assert waits == [1, 2]

    # a create the engine refuses (a bad parameter: ValueError in-process, 4xx from a server) is final
    class RefusingClient(LateReplyClient):
        def create_collection(self, *args: object, **kwargs: object) -> object:
            raise ValueError("bad vectors_config")

    waits.clear()
    with pytest.raises(IndexBackendError, match="bad vectors_config"):
        QdrantServerIndex(QdrantServerConfig(":memory:", "items", DIM), client=RefusingClient())
    assert waits == []

    # the race lost: the create is refused because another replica's create made the collection
    class LostRaceClient(LateReplyClient):
        def create_collection(self, *args: object, **kwargs: object) -> object:
            self.engine.create_collection(*args, **kwargs)  # type: ignore[arg-type]
            raise ValueError("Collection `items` already exists!")

    lost = LostRaceClient()
    assert QdrantServerIndex(QdrantServerConfig(":memory:", "items", DIM), client=lost).count() == 0
    assert waits == [] and lost.engine.collection_exists("items")
