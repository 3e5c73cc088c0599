"""Similar, Complementary, Inspire and Batch over real loopback gRPC, with real trained models (a
similar and a complementary model, trained and exported by the session fixtures) and real indexes: a
Qdrant Edge shard per model, and the same through the server adapter (qdrant-client in-process) in a
second variant. The synthetic catalogue's ground truth (taxonomy, complementary categories) checks
that each task does what it says; every filter is checked on every task."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from vitrine.api.client import (
    BatchError,
    Complementary,
    Filters,
    Inspire,
    RecommendationList,
    RecommenderClient,
    Similar,
)
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.catalog.schema import Product
from vitrine.data.synthetic import COMPLEMENTARY_MAP, SyntheticConfig, generate
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import VectorIndex
from vitrine.index.server import QdrantServerConfig, QdrantServerIndex
from vitrine.model.inference import InferenceModel, load_inference_model
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.diversity import nearest_clusters
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.stream.broker import free_port
from vitrine.stream.pipeline import encode_products
from vitrine.v1 import recommender_pb2 as pb
from vitrine.v1 import recommender_pb2_grpc

pytestmark = pytest.mark.integration
N_PRODUCTS = 600


@dataclass
class World:
    products: dict[str, Product]
    similar_model: InferenceModel
    complementary_model: InferenceModel
    similar_index: EdgeIndex
    registry: ModelRegistry
    server: GrpcServer
    metrics: RecommenderMetrics

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def leaf(self, product_id: str) -> str:
        return self.products[product_id].leaf_category

    def of_leaf(self, leaf: str, in_stock: bool = True) -> list[Product]:
        return [
            p
            for p in self.products.values()
            if p.leaf_category == leaf and p.availability.purchasable == in_stock
        ]


def _fill(index: VectorIndex, model: InferenceModel, products: list[Product]) -> None:
    index.apply(encode_products(model, products))


@pytest.fixture(scope="module")
def world(
    model_dir: Path, complementary_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    products = list(
        generate(SyntheticConfig(n_products=N_PRODUCTS, seed=11, n_sessions=10, n_baskets=10)).products
    )
    sim, compl = load_inference_model(model_dir), load_inference_model(complementary_model_dir)
    root = tmp_path_factory.mktemp("recommend")
    indexes: list[VectorIndex] = []
    models: dict[str, ServedModel] = {}
    for adapter in ("edge", "server"):
        for name, model in (("sim", sim), ("compl", compl)):
            index: VectorIndex
            if adapter == "edge":
                index = EdgeIndex(EdgeIndexConfig(root / f"{name}-edge", model.dim))
            else:
                index = QdrantServerIndex(QdrantServerConfig(str(root / f"{name}-server"), name, model.dim))
            _fill(index, model, products)
            indexes.append(index)
            key = name if adapter == "edge" else f"{name}-server"
            models[key] = ServedModel(key, model.model_version, model.task, index, model)
    router = ExperimentRouter(
        [
            Variant("control", 1, similar="sim", complementary="compl", inspire="sim"),
            Variant("treatment", 1, similar="sim", complementary="compl", inspire="sim"),
            # weight 0: serve only the requests that name them
            Variant("server", 0, similar="sim-server", complementary="compl-server", inspire="sim-server"),
            Variant("no-complementary", 0, similar="sim", inspire="sim"),
        ],
        salt="test",
    )
    registry = ModelRegistry(ServingSnapshot(models, router))
    metrics = RecommenderMetrics()
    server = create_grpc_server(registry, metrics)
    server.start()
    server.set_serving(True)
    edge_index = models["sim"].index
    assert isinstance(edge_index, EdgeIndex)
    yield World({p.product_id: p for p in products}, sim, compl, edge_index, registry, server, metrics)
    server.stop(0)
    for index in indexes:
        index.close()


@pytest.fixture
def client(world: World) -> Iterator[RecommenderClient]:
    with RecommenderClient(world.target, timeout_s=10, retries=0) as c:
        yield c


def _code(call) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


# -- Similar ------------------------------------------------------------------------------------------


def test_similar_for_an_inline_product_stays_in_its_category_and_skips_its_duplicate(
    world: World, client: RecommenderClient
) -> None:
    product = world.of_leaf("Coffee Machines")[0]
    draft = replace(product, product_id="", description="")  # a product not in the catalogue yet
    result = client.similar(product=draft, limit=10)
    assert product.product_id not in result.ids  # same title + brand: a duplicate of the draft
    assert sum(world.leaf(i) == product.leaf_category for i in result.ids) >= 7
    assert all(i.task == "similar" and i.reason == "similar to the given product" for i in result.items)
    by_id = client.similar(product.product_id, limit=10)
    assert len(set(by_id.ids) & set(result.ids)) >= 7  # the item tower reproduces the indexed vector


# -- Complementary ------------------------------------------------------------------------------------


def test_complements_skip_the_own_category_rank_by_score_and_name_theirs(
    world: World, client: RecommenderClient
) -> None:
    anchor = world.of_leaf("Laptops")[0]
    result = client.complementary(anchor.product_id, limit=9)
    assert len(result.ids) == 9 and result.model_version == world.complementary_model.model_version
    leaves = [world.leaf(i) for i in result.ids]
    assert "Laptops" not in leaves
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)  # one query over every category, ranked by score
    assert all(i.target_category == world.leaf(i.product_id) for i in result.items)
    assert all(i.anchor_product_id == anchor.product_id and i.task == "complementary" for i in result.items)
    assert result.items[0].reason == f"goes with {anchor.product_id}: {leaves[0]}"


def test_the_evaluation_ranks_exactly_what_the_grpc_method_serves(
    world: World, client: RecommenderClient
) -> None:
    """`vitrine eval recommend` scores the complementary model through the gRPC method's own function
    (its own Edge shard, exact search): for the same products both give the same list. Control: the
    former evaluation path (per-category queries over the mined prior, merged) gives other lists, so
    this comparison would catch an evaluation that measures something the service does not serve."""
    from vitrine.eval.recommend import served_complementary_scores

    products = [p for p in world.products.values() if p.availability.purchasable]  # the default filter
    row = {p.product_id: i for i, p in enumerate(products)}
    served_scores = served_complementary_scores(world.complementary_model, products, {})
    gated_scores = served_complementary_scores(world.complementary_model, products, {}, targets_per_query=3)
    anchors = [
        p for leaf in ("Laptops", "Smartphones", "Running Shoes", "Dresses") for p in world.of_leaf(leaf)[:3]
    ]
    differs = 0
    for anchor in anchors:
        served = client.complementary(anchor.product_id, limit=20).ids
        q = np.array([row[anchor.product_id]])
        evaluated = [products[i].product_id for i in np.argsort(-served_scores(q)[0], kind="stable")[:20]]
        assert evaluated == served, anchor.product_id
        gated = [products[i].product_id for i in np.argsort(-gated_scores(q)[0], kind="stable")[:20]]
        differs += gated != served
    assert differs >= len(anchors) // 2


def test_complements_match_the_catalogues_ground_truth(world: World, client: RecommenderClient) -> None:
    """The map was mined from synthetic baskets built from COMPLEMENTARY_MAP: for a leaf that has
    ground-truth complements, most of what Complementary returns is one of them."""
    hits = total = 0
    for leaf in COMPLEMENTARY_MAP:
        for anchor in world.of_leaf(leaf)[:2]:
            ids = client.complementary(anchor.product_id, limit=6).ids
            hits += sum(world.leaf(i) in COMPLEMENTARY_MAP[leaf] for i in ids)
            total += len(ids)
    assert total > 100 and hits / total >= 0.6


def test_named_target_categories_and_inline_products(world: World, client: RecommenderClient) -> None:
    anchor = world.of_leaf("Smartphones")[0]
    result = client.complementary(anchor.product_id, limit=6, target_categories=["Chargers", "Headphones"])
    assert [world.leaf(i) for i in result.ids] == ["Chargers", "Headphones"] * 3
    inline = client.complementary(product=replace(anchor, product_id="", description=""), limit=6)
    assert len(inline.ids) == 6 and "Smartphones" not in {world.leaf(i) for i in inline.ids}
    # an inline copy of an indexed product (same content as its payload) gets the same complements
    assert inline.ids == client.complementary(anchor.product_id, limit=6).ids
    code, details = _code(
        lambda: client.complementary(anchor.product_id, target_categories=["Chargers", "Smartphones"])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "own category" in details


# -- Inspire --------------------------------------------------------------------------------------------


def test_inspire_from_a_history_covers_its_categories_from_the_nearest_clusters(
    world: World, client: RecommenderClient
) -> None:
    shoes, coffee, bikes = (world.of_leaf(x) for x in ("Running Shoes", "Coffee Machines", "Bicycles"))
    history = [shoes[0].product_id, coffee[0].product_id, shoes[1].product_id, bikes[0].product_id]
    result = client.inspire(history=history, limit=18)  # later = more recent
    assert len(result.ids) == 18 and not set(result.ids) & set(history)
    # anchors: the most recent item per category, most recent category first
    anchors = [i.anchor_product_id for i in result.items]
    assert anchors[:3] == [bikes[0].product_id, shoes[1].product_id, coffee[0].product_id]
    assert set(anchors) == {bikes[0].product_id, shoes[1].product_id, coffee[0].product_id}
    # each item comes from one of the 3 clusters nearest to its anchor (clusters stored by the encoder)
    vectors = world.similar_index.get(anchors[:3])
    centroids = world.similar_model.centroids
    assert centroids is not None
    for item in result.items:
        assert item.cluster in nearest_clusters(vectors[item.anchor_product_id].vector, centroids, 3)
    assert len({world.leaf(i) for i in result.ids}) >= 4  # several categories, not one
    assert all(i.task == "inspire" and f"(cluster {i.cluster})" in i.reason for i in result.items)


def test_skip_clusters_moves_away_from_the_nearest_ones(world: World, client: RecommenderClient) -> None:
    anchor = world.of_leaf("Dresses")[0]
    vector = world.similar_index.get([anchor.product_id])[anchor.product_id].vector
    centroids = world.similar_model.centroids
    assert centroids is not None
    skipped = set(nearest_clusters(vector, centroids, 2))
    result = client.inspire(history=[anchor.product_id], limit=12, skip_clusters=2, nearest_clusters=2)
    assert result.ids and not {i.cluster for i in result.items} & skipped
    assert {i.cluster for i in result.items} <= set(nearest_clusters(vector, centroids, 2, skip=2))


def test_a_free_text_intent_leads_to_its_category(world: World, client: RecommenderClient) -> None:
    for intent, leaf in (("running shoes", "Running Shoes"), ("leather handbag", "Handbags")):
        result = client.inspire(intent=intent, limit=9)
        assert world.leaf(result.ids[0]) == leaf  # nearest cluster first: the intent's own
        assert sum(world.leaf(i) == leaf for i in result.ids) >= 3
        assert result.items[0].reason.startswith(f"for '{intent}'")


def test_mmr_spreads_the_list_wider_than_plain_nearest_neighbours(
    world: World, client: RecommenderClient
) -> None:
    anchor = world.of_leaf("Headphones")[0]
    relevance_only = client.inspire(history=[anchor.product_id], limit=10, strategy="mmr", mmr_diversity=0.0)
    diverse = client.inspire(history=[anchor.product_id], limit=10, strategy="mmr", mmr_diversity=0.8)
    nearest = client.similar(anchor.product_id, limit=10)
    assert relevance_only.ids == nearest.ids

    def spread(ids: list[str]) -> float:
        m = np.stack([v.vector for v in world.similar_index.get(ids).values()])
        sims = m @ m.T
        return float((sims.sum() - np.trace(sims)) / (len(ids) * (len(ids) - 1)))

    assert spread(diverse.ids) < spread(nearest.ids) - 0.05
    assert len({world.leaf(i) for i in diverse.ids}) > len({world.leaf(i) for i in nearest.ids})


# -- filters, on every task -----------------------------------------------------------------------------


def _requests(world: World, filters: Filters) -> dict[str, object]:
    laptop, shoes = world.of_leaf("Laptops")[0], world.of_leaf("Running Shoes")[0]
    return {
        "similar": Similar(laptop.product_id, limit=40, filters=filters),
        "complementary": Complementary(laptop.product_id, limit=40, filters=filters),
        "inspire": Inspire(history=[laptop.product_id, shoes.product_id], limit=40, filters=filters),
        # one intent has one anchor: under these caps (4 per leaf) its 3 default clusters, mostly mice,
        # hold too few eligible items, so it searches more clusters (what a caller would do)
        "intent": Inspire(intent="wireless mouse", limit=40, filters=filters, nearest_clusters=12),
    }


@pytest.mark.parametrize("task", ["similar", "complementary", "inspire", "intent"])
def test_filters_hold_on_every_task(world: World, client: RecommenderClient, task: str) -> None:
    excluded = sorted(world.products)[:200]
    filters = Filters(
        price_min=20,
        price_max=400,
        categories_include=["Electronics", "Sports"],
        categories_exclude=["Keyboards"],
        sellers_exclude=["seller-00", "seller-01"],
        exclude_product_ids=excluded,
        max_per_seller=3,
        max_per_category=4,
    )
    (result,) = client.batch([_requests(world, filters)[task]])  # type: ignore[list-item]
    assert isinstance(result, RecommendationList) and len(result.ids) >= 8, result
    sellers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for item in result.items:
        p = world.products[item.product_id]
        assert p.availability.purchasable  # in stock by default
        assert p.price is not None and 20 <= p.price <= 400 and item.price == pytest.approx(p.price)
        assert p.category_path[0] in ("Electronics", "Sports") and p.leaf_category != "Keyboards"
        assert p.seller not in ("seller-00", "seller-01") and p.product_id not in excluded
        assert (item.seller, item.category) == (p.seller, p.leaf_category)
        sellers[p.seller] += 1
        leaves[p.leaf_category] += 1
    assert max(sellers.values()) <= 3 and max(leaves.values()) <= 4


def test_out_of_stock_items_only_when_asked_and_sellers_include(
    world: World, client: RecommenderClient
) -> None:
    out_of_stock = {pid for pid, p in world.products.items() if not p.availability.purchasable}
    anchor = next(p for p in world.products.values() if not p.availability.purchasable)
    default = client.similar(anchor.product_id, limit=200)
    everything = client.similar(anchor.product_id, limit=200, include_out_of_stock=True)
    assert not set(default.ids) & out_of_stock and set(everything.ids) & out_of_stock
    only = client.similar(anchor.product_id, limit=30, filters=Filters(sellers_include=["seller-03"]))
    assert only.ids and {world.products[i].seller for i in only.ids} == {"seller-03"}


# -- errors ----------------------------------------------------------------------------------------------


def test_unknown_products_and_missing_models(world: World, client: RecommenderClient) -> None:
    assert _code(lambda: client.similar("nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.complementary("nope"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = _code(lambda: client.inspire(history=["nope", "gone"]))
    assert code == grpc.StatusCode.NOT_FOUND and "none of the history" in details
    # unknown history items are skipped when others are known
    known = world.of_leaf("Mugs")[0].product_id
    assert client.inspire(history=["gone", known], limit=3).ids
    code, details = _code(lambda: client.complementary(known, variant="no-complementary"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "serves no complementary model" in details


def test_bad_requests_get_invalid_argument_and_are_counted_by_variant(world: World) -> None:
    stub = recommender_pb2_grpc.RecommenderStub(grpc.insecure_channel(world.target))
    cases = [
        (stub.Similar, pb.SimilarRequest(product_id="p000001", limit=501), "limit must be between 1 and 500"),
        (stub.Inspire, pb.InspireRequest(history=[pb.ViewedProduct(product_id="a")] * 101), "at most 100"),
        (stub.Inspire, pb.InspireRequest(intent="x" * 1001), "longer than 1000 characters"),
        (stub.Complementary, pb.ComplementaryRequest(), "product_id (or product) is required"),
        (stub.Similar, pb.SimilarRequest(product_id="p000001", variant="nope"), "unknown variant 'nope'"),
        (stub.Batch, pb.BatchRequest(), "a batch holds 1..32 requests"),
    ]
    before = world.metrics.requests.labels("Similar", "INVALID_ARGUMENT", "control")._value.get()
    for method, request, message in cases:
        code, details = _code(lambda method=method, request=request: method(request, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details
    after = world.metrics.requests.labels("Similar", "INVALID_ARGUMENT", "control")._value.get()
    assert after == before + 1  # the bad limit, counted under the variant that served it
    assert world.metrics.requests.labels("Similar", "INVALID_ARGUMENT", "none")._value.get() >= 1


# -- Batch ------------------------------------------------------------------------------------------------


def test_batch_serves_every_task_in_one_call_from_one_variant(
    world: World, client: RecommenderClient
) -> None:
    laptop = world.of_leaf("Laptops")[0].product_id
    results = client.batch(
        [
            Similar(laptop, limit=4),
            Complementary(laptop, limit=4),
            Inspire(history=[laptop], limit=4),
            Similar("nope"),
            Inspire(intent="coffee", limit=2),
        ],
        unit_key="user-17",
    )
    assert [type(r).__name__ for r in results] == ["RecommendationList"] * 3 + [
        "BatchError",
        "RecommendationList",
    ]
    error = results[3]
    assert (
        isinstance(error, BatchError) and error.code == grpc.StatusCode.NOT_FOUND and "nope" in error.message
    )
    lists = [r for r in results if isinstance(r, RecommendationList)]
    assert len({r.variant for r in lists}) == 1  # one unit, one variant for the whole page
    assert results[0].ids == client.similar(laptop, limit=4, unit_key="user-17").ids  # type: ignore[union-attr]
    assert world.metrics.requests.labels("Batch.Similar", "NOT_FOUND", lists[0].variant)._value.get() >= 1


# -- experiments --------------------------------------------------------------------------------------------


def test_the_experiment_split_is_stable_and_labelled(world: World, client: RecommenderClient) -> None:
    anchor = world.of_leaf("Mugs")[0].product_id
    first = {f"u{i}": client.similar(anchor, limit=1, unit_key=f"u{i}").variant for i in range(200)}
    again = {f"u{i}": client.similar(anchor, limit=1, unit_key=f"u{i}").variant for i in range(200)}
    assert first == again
    counts = Counter(first.values())
    assert (
        set(counts) == {"control", "treatment"} and min(counts.values()) > 70
    )  # 50/50; weight-0 arms get none
    assert client.similar(anchor, limit=1).variant == "control"  # no unit key: the control
    assert client.similar(anchor, limit=1, unit_key="u1", variant="server").variant == "server"
    ok = world.metrics.requests.labels("Similar", "OK", "treatment")._value.get()
    assert ok >= 2 * counts["treatment"]


def test_the_server_adapter_answers_like_the_edge_shard(world: World, client: RecommenderClient) -> None:
    """The same models on qdrant-client's in-process Qdrant (the server adapter's code path)."""
    laptop, mug = world.of_leaf("Laptops")[0].product_id, world.of_leaf("Mugs")[0].product_id
    for request in (
        Similar(laptop, limit=12, filters=Filters(max_per_seller=2)),
        Complementary(laptop, limit=12),
        Inspire(history=[laptop, mug], limit=12),
        Inspire(history=[mug], limit=8, strategy="mmr"),
    ):
        edge, server = (
            client.batch([request], variant="control")[0],
            client.batch([request], variant="server")[0],
        )
        assert isinstance(edge, RecommendationList) and isinstance(server, RecommendationList)
        assert edge.ids == server.ids and edge.ids


# -- deadlines, retries, hot reload ----------------------------------------------------------------------


def test_a_late_batch_stops_at_the_deadline(world: World) -> None:
    history = list(world.products)[:100]
    heavy = Inspire(
        history=history, limit=500, max_anchors=4, nearest_clusters=16
    )  # the most searches allowed
    client = RecommenderClient(world.target, timeout_s=0.05, retries=0)
    before = sum(
        world.metrics.requests.labels("Batch", "DEADLINE_EXCEEDED", v)._value.get()
        for v in ("control", "treatment")
    )
    started = time.monotonic()
    code, _ = _code(lambda: client.batch([heavy] * 32, unit_key="late"))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started < 1
    # the server noticed too and stopped the batch instead of computing 32 lists nobody reads
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = sum(
            world.metrics.requests.labels("Batch", "DEADLINE_EXCEEDED", v)._value.get()
            for v in ("control", "treatment")
        )
        if after > before:
            break
        time.sleep(0.05)
    assert after == before + 1
    client.close()


def test_the_client_retries_while_the_server_is_unavailable(world: World) -> None:
    port = free_port()
    servers: list[GrpcServer] = []

    def start_late() -> None:  # the server comes up while the client is already retrying
        servers.append(create_grpc_server(world.registry, RecommenderMetrics(), f"127.0.0.1:{port}"))
        servers[0].start()

    starter = threading.Timer(0.4, start_late)
    starter.start()
    try:
        with RecommenderClient(f"127.0.0.1:{port}", timeout_s=10, retries=10, backoff_s=0.1) as client:
            assert client.similar(world.of_leaf("Mugs")[0].product_id, limit=2).ids
        with RecommenderClient(
            f"127.0.0.1:{free_port()}", timeout_s=0.5, retries=2, backoff_s=0.01
        ) as client:
            assert _code(lambda: client.similar("p000001"))[0] == grpc.StatusCode.UNAVAILABLE
    finally:
        starter.join()
        for server in servers:
            server.stop(0)


def test_hot_reload_swaps_models_without_failing_a_request(world: World) -> None:
    """Requests run all along; the snapshot is swapped to a new model version; none fails, new requests
    see the new version at once, and the retired model is closed once its requests are done."""
    current = world.registry.current
    closed: list[str] = []
    sim = current.models["sim"]
    renamed = ServedModel(
        "sim-v2", "similar-v2", sim.task, sim.index, sim.model, closers=(lambda: closed.append("v2"),)
    )
    retiring = ServedModel(
        "old", "similar-old", sim.task, sim.index, sim.model, closers=(lambda: closed.append("old"),)
    )
    old_router = ExperimentRouter([Variant("control", similar="old", complementary="compl", inspire="old")])
    new_router = ExperimentRouter(
        [Variant("control", similar="sim-v2", complementary="compl", inspire="sim-v2")]
    )
    old = ServingSnapshot({**current.models, "old": retiring}, old_router)
    new = ServingSnapshot({**current.models, "sim-v2": renamed}, new_router)
    world.registry.swap(old, 0)
    closed.clear()
    versions: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    anchor = world.of_leaf("Mugs")[0].product_id

    def hammer() -> None:
        with RecommenderClient(world.target, timeout_s=5, retries=0) as c:
            while not stop.is_set():
                try:
                    first = c.batch([Similar(anchor, limit=3), Inspire(history=[anchor], limit=3)])[0]
                    assert isinstance(first, RecommendationList), first
                    versions.append(first.model_version)
                except BaseException as e:
                    failures.append(e)

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for w in workers:
            w.start()
        time.sleep(0.5)
        retired = world.registry.swap(new, drain_timeout_s=10)
        switched_at = len(versions)
        closed_by_swap = list(closed)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        world.registry.swap(current, 0)  # the other tests' snapshot back
    assert not failures
    assert [m.name for m in retired] == ["old"] and closed_by_swap == ["old"]
    assert versions[0] == "similar-old" and versions[-1] == "similar-v2"
    assert "similar-old" not in versions[switched_at + 8 :]  # after the swap only in-flight requests were old


def test_the_example_service_renders_a_product_page(world: World) -> None:
    """docs/examples/product_page.py: another service using the client (one Batch per page)."""
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "product_page.py"
    laptop, mug = world.of_leaf("Laptops")[0].product_id, world.of_leaf("Mugs")[0].product_id
    args = ["--recommender", world.target, "--once", laptop, "--session", "s-1", "--viewed", mug]
    run = subprocess.run(
        [sys.executable, str(example), *args, "--budget", "10"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    page = json.loads(run.stdout)
    assert page["product"] == laptop and page["variant"] in ("control", "treatment")
    carousels = page["carousels"]
    assert [len(carousels[t]) for t in ("similar", "goes well with", "you may also like")] == [8, 8, 8]
    assert all(laptop != item["id"] for items in carousels.values() for item in items)
    # and a page still renders when the recommender is down: empty carousels, not an error
    down = subprocess.run(
        [sys.executable, str(example), "--recommender", f"127.0.0.1:{free_port()}", "--once", laptop],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert all(items == [] for items in json.loads(down.stdout)["carousels"].values())
