"""The walking skeleton, end to end, with every part real: Kafka broker, encoder and recommender as
separate processes (as deployed), Qdrant Edge inside the recommender, gRPC over loopback.

produce N products → all searchable; update → new neighbours; delete → gone; an older version
arriving after a newer one is ignored; out-of-stock products leave recommendations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from vitrine.api.client import RecommenderClient
from vitrine.catalog.schema import Availability, Product
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stack import LocalStack
from vitrine.stream.kafka import group_progress, make_consumer
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.records import decode_vector_change

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N_PRODUCTS = 300


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        time.sleep(0.05)
    return time.monotonic() - started


def searchable(client: RecommenderClient, product_id: str) -> bool:
    try:
        client.similar(product_id, limit=1)
        return True
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise


@pytest.fixture(scope="module")
def stack(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("stack"), model_dir)
    try:
        local.start_broker()
        local.start_encoder()
        local.start_recommender()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def catalog() -> list[Product]:
    return list(generate(SyntheticConfig(n_products=N_PRODUCTS, seed=11)).products)


@pytest.fixture(scope="module")
def loaded(stack: LocalStack, catalog: list[Product]) -> tuple[CatalogPublisher, RecommenderClient]:
    publisher = CatalogPublisher.connect(stack.kafka, stack.topics.products)
    for product in catalog:
        publisher.upsert(product, version=1)
    report = publisher.flush()
    assert report.acknowledged == N_PRODUCTS and not report.failed
    client = RecommenderClient(stack.services[-1].grpc_target, timeout_s=5)
    in_stock = [p for p in catalog if p.availability.purchasable]
    wait_for(
        lambda: all(searchable(client, p.product_id) for p in in_stock[-5:]), 60, "last products searchable"
    )
    return publisher, client


def test_every_produced_product_is_searchable(loaded, catalog: list[Product]) -> None:
    _, client = loaded
    missing = [p.product_id for p in catalog if not searchable(client, p.product_id)]
    assert missing == []


def test_similar_products_share_the_anchor_category(loaded, catalog: list[Product]) -> None:
    _, client = loaded
    by_id = {p.product_id: p for p in catalog}
    agreement = []
    for anchor in catalog[:40]:
        result = client.similar(anchor.product_id, limit=5)
        assert anchor.product_id not in result.ids
        agreement += [by_id[i].category_path[-1] == anchor.category_path[-1] for i in result.ids]
    # leaves are ~3 % of the catalogue each: a trained model must do far better than chance
    assert sum(agreement) / len(agreement) > 0.5


def test_out_of_stock_products_are_not_recommended(loaded, catalog: list[Product]) -> None:
    _, client = loaded
    out_of_stock = {p.product_id for p in catalog if not p.availability.purchasable}
    assert out_of_stock, "the synthetic catalogue has out-of-stock products"
    for anchor in catalog[:30]:
        assert not out_of_stock & set(client.similar(anchor.product_id, limit=20).ids)


def test_an_update_moves_the_product_to_new_neighbours(loaded, catalog: list[Product]) -> None:
    publisher, client = loaded
    by_id = {p.product_id: p for p in catalog}
    anchor = next(p for p in catalog if p.category_path[-1] == "Laptops")
    donor = next(p for p in catalog if p.category_path[-1] == "Frying Pans")
    publisher.upsert(
        replace(anchor, title=donor.title, description=donor.description, category_path=donor.category_path),
        version=2,
    )
    publisher.flush()

    def now_cookware() -> bool:
        ids = client.similar(anchor.product_id, limit=5).ids
        return sum(by_id[i].category_path[-1] == "Frying Pans" for i in ids) >= 3

    wait_for(now_cookware, 30, "updated product among frying pans")


def test_a_delete_removes_the_product_everywhere(loaded, catalog: list[Product]) -> None:
    publisher, client = loaded
    anchor = catalog[5]
    victim = client.similar(anchor.product_id, limit=3).ids[0]
    publisher.delete(victim, version=10)
    publisher.flush()
    wait_for(lambda: not searchable(client, victim), 30, "deleted product gone")
    assert victim not in client.similar(anchor.product_id, limit=50, include_out_of_stock=True).ids


def encoder_caught_up(stack: LocalStack, group_id: str = "vitrine-encoder") -> bool:
    """Has the encoder group committed everything on the products topic?"""
    progress = group_progress(stack.kafka, group_id, stack.topics.products)
    return all(committed >= end for committed, end in progress.values())


def vector_versions(stack: LocalStack, product_id: str) -> list[int]:
    consumer = make_consumer(
        stack.kafka, stack.topics.vectors, consumer_timeout_ms=3000, isolation_level="read_committed"
    )
    versions = [decode_vector_change(r.value).version for r in consumer if r.key == product_id.encode()]
    consumer.close()
    return versions


def test_an_older_version_after_a_newer_one_is_ignored(
    loaded, stack: LocalStack, catalog: list[Product]
) -> None:
    publisher, client = loaded
    product = catalog[9]
    newer = replace(product, title=product.title + " v5")
    older = replace(product, title="STALE " + product.title)
    publisher.upsert(newer, version=5)
    publisher.upsert(older, version=4)
    publisher.flush()
    wait_for(lambda: encoder_caught_up(stack), 30, "encoder committed both events")
    # the stale event was dropped before the compacted vectors topic, where it would have won compaction
    assert vector_versions(stack, product.product_id) == [1, 5]

    def title_of(pid: str) -> str | None:
        items = client.similar(catalog[12].product_id, limit=N_PRODUCTS, include_out_of_stock=True).items
        return next((i.title for i in items if i.product_id == pid), None)

    wait_for(lambda: title_of(product.product_id) == newer.title, 30, "newer title visible")


def test_an_availability_change_takes_effect(loaded, catalog: list[Product]) -> None:
    publisher, client = loaded
    anchor = catalog[20]
    neighbour = client.similar(anchor.product_id, limit=1).ids[0]
    by_id = {p.product_id: p for p in catalog}
    publisher.upsert(replace(by_id[neighbour], availability=Availability.OUT_OF_STOCK), version=20)
    publisher.flush()
    wait_for(
        lambda: neighbour not in client.similar(anchor.product_id, limit=20).ids, 30, "out of stock hidden"
    )
    assert neighbour in client.similar(anchor.product_id, limit=20, include_out_of_stock=True).ids
