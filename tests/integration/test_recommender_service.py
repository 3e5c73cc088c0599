"""The deployed recommender with several models, end to end: Kafka broker, one encoder per model (the
complementary model's backfilling its own vectors topic, catalog.vectors.<model version>) and the
recommender as separate processes, gRPC over loopback. Inspire uses the clusters the encoder stored;
a SIGHUP reload adds the complementary model and an experiment while requests keep flowing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from vitrine.api.client import RecommenderClient
from vitrine.catalog.schema import Product
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.model.card import read_card
from vitrine.stack import LocalStack, ServiceProcess
from vitrine.stream.publisher import CatalogPublisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N_PRODUCTS = 300


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        time.sleep(0.1)


def answers(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def catalog() -> list[Product]:
    return list(
        generate(SyntheticConfig(n_products=N_PRODUCTS, seed=5, n_sessions=10, n_baskets=10)).products
    )


@pytest.fixture(scope="module")
def stack(
    model_dir: Path,
    complementary_model_dir: Path,
    kafka_broker: object,
    catalog: list[Product],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalStack, ServiceProcess]]:
    local = LocalStack(tmp_path_factory.mktemp("multi-model"), model_dir)
    try:
        local.attach_broker(kafka_broker)  # type: ignore[arg-type]
        # the catalogue first: the encoders start on an existing topic, as a backfill does
        with CatalogPublisher.connect(local.kafka, local.topics.products) as publisher:
            for product in catalog:
                publisher.upsert(product, version=1)
        encoders = [
            local.start_encoder(),  # the similar model → catalog.vectors
            # the complementary model: its own consumer group and vectors topic (the encoder's backfill)
            local.start_encoder(
                "encoder-complementary", None, ("--backfill",), model_dir=complementary_model_dir
            ),
        ]
        for encoder in encoders:
            wait_for(lambda e=encoder: "caught up:" in e.log_tail(400), 120, f"{encoder.name} caught up")
        recommender = local.start_recommender(config={"experiment_salt": "e2e"})
        with RecommenderClient(recommender.grpc_target, timeout_s=5) as client:
            last = next(p for p in reversed(catalog) if p.availability.purchasable)
            wait_for(
                lambda: answers(lambda: client.similar(last.product_id)) == grpc.StatusCode.OK, 120, "indexed"
            )
        yield local, recommender
    finally:
        local.stop()


def test_inspire_uses_the_clusters_the_encoder_assigned(
    stack: tuple[LocalStack, ServiceProcess], catalog: list[Product]
) -> None:
    _, recommender = stack
    by_id = {p.product_id: p for p in catalog}
    history = [p.product_id for p in catalog if p.leaf_category in ("Bicycles", "Mugs")][:4]
    with RecommenderClient(recommender.grpc_target, timeout_s=5) as client:
        result = client.inspire(history=history, limit=10)
        assert len(result.ids) == 10 and not set(result.ids) & set(history)
        assert all(i.cluster >= 0 for i in result.items)  # stored with each vector by the encoder
        assert len({by_id[i].leaf_category for i in result.ids}) >= 3
        assert result.variant == "default"


def test_sighup_adds_a_model_and_an_experiment_without_failing_a_request(
    stack: tuple[LocalStack, ServiceProcess], catalog: list[Product], complementary_model_dir: Path
) -> None:
    local, recommender = stack
    laptop = next(p for p in catalog if p.leaf_category == "Laptops")
    compl_version = read_card(complementary_model_dir).model_version
    client = RecommenderClient(recommender.grpc_target, timeout_s=5, retries=0)
    code = answers(lambda: client.complementary(laptop.product_id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # no complementary model served yet

    failures: list[BaseException] = []
    served = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal served
        with RecommenderClient(recommender.grpc_target, timeout_s=5, retries=0) as c:
            while not stop.is_set():
                try:
                    c.similar(laptop.product_id, limit=5, unit_key=f"u{served % 50}")
                    served += 1
                except BaseException as e:
                    failures.append(e)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        # a broken configuration is refused: the service keeps serving what it had
        local.write_recommender_config(recommender.name, {"variants": [{"name": "x", "similar": "nope"}]})
        recommender.hangup()
        wait_for(lambda: "reload: invalid settings" in recommender.log_tail(200), 30, "bad reload refused")
        # the complementary model (its vectors in catalog.vectors.<version>) and a 50/50 experiment
        local.write_recommender_config(
            recommender.name,
            {
                "complementary_model_dir": complementary_model_dir,
                "variants": [
                    {"name": "control", "weight": 1, "similar": "default", "complementary": "complementary"},
                    {
                        "name": "treatment",
                        "weight": 1,
                        "similar": "default",
                        "complementary": "complementary",
                    },
                ],
                "experiment_salt": "e2e",
            },
        )
        recommender.hangup()
        wait_for(
            lambda: answers(lambda: client.complementary(laptop.product_id)) == grpc.StatusCode.OK,
            120,
            "reloaded",
        )
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(10)
    assert not failures and served > 20

    result = client.complementary(laptop.product_id, limit=6)
    by_id = {p.product_id: p for p in catalog}
    assert result.model_version == compl_version and len(result.ids) == 6
    assert all(by_id[i.product_id].leaf_category == i.target_category != "Laptops" for i in result.items)
    variants = {client.similar(laptop.product_id, limit=1, unit_key=f"user-{i}").variant for i in range(40)}
    assert variants == {"control", "treatment"}
    assert recommender.metric("vitrine_recommender_index_items", {"model": compl_version}) >= N_PRODUCTS * 0.9
    assert (
        recommender.metric("vitrine_recommender_requests_total", {"method": "Complementary", "code": "OK"})
        >= 1
    )
    client.close()


def test_a_changed_configuration_is_picked_up_without_a_signal(
    stack: tuple[LocalStack, ServiceProcess], catalog: list[Product]
) -> None:
    """reload_check_s: a mounted ConfigMap changes without anyone sending SIGHUP."""
    local, _ = stack
    poller = local.start_recommender("recommender-poll", config={"reload_check_s": 1})
    mug = next(p for p in catalog if p.leaf_category == "Mugs").product_id
    with RecommenderClient(poller.grpc_target, timeout_s=5) as client:
        wait_for(lambda: answers(lambda: client.similar(mug)) == grpc.StatusCode.OK, 60, "caught up")
        assert client.similar(mug, limit=1, unit_key="u1").variant == "default"
        local.write_recommender_config(
            poller.name,
            {
                "reload_check_s": 1,
                "variants": [{"name": "only-arm", "similar": "default", "inspire": "default"}],
            },
        )
        wait_for(lambda: client.similar(mug, limit=1, unit_key="u1").variant == "only-arm", 30, "picked up")
        assert client.inspire(history=[mug], limit=3).variant == "only-arm"
    poller.terminate()
