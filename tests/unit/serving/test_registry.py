"""The model registry's hot swap: new requests see the new snapshot at once; models the new snapshot
no longer uses are closed only after the last request on the old snapshot has finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from support.serving import index_only_snapshot

from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.serving.errors import NotConfiguredError
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.serving.results import Task


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeIndex]:
    ix = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("registry") / "shard", 4))
    yield ix
    ix.close()


def snapshot(
    index: EdgeIndex, *names: str, closed: list[str]
) -> tuple[ServingSnapshot, dict[str, ServedModel]]:
    def closer(name: str) -> Callable[[], None]:
        return lambda: closed.append(name)

    models = {n: ServedModel(n, f"{n}-v1", "similar", index, closers=(closer(n),)) for n in names}
    router = ExperimentRouter([Variant("default", similar=names[0], inspire=names[0])])
    return ServingSnapshot(models, router), models


def test_swap_waits_for_requests_on_the_old_snapshot_before_closing_its_models(index: EdgeIndex) -> None:
    closed: list[str] = []
    old, old_models = snapshot(index, "a", "keep", closed=closed)
    registry = ModelRegistry(old)
    new = ServingSnapshot(
        {"b": ServedModel("b", "b-v1", "similar", index), "keep": old_models["keep"]}, old.router
    )
    in_flight = threading.Event()
    release = threading.Event()
    seen: dict[str, object] = {}

    def slow_request() -> None:
        with registry.lease() as s:
            seen["snapshot"] = s
            in_flight.set()
            release.wait(5)
            seen["closed_meanwhile"] = list(closed)

    worker = threading.Thread(target=slow_request)
    worker.start()
    in_flight.wait(5)
    swapper = threading.Thread(target=lambda: registry.swap(new, drain_timeout_s=10))
    swapper.start()
    time.sleep(0.2)
    with registry.lease() as s:
        assert s is new  # new requests are on the new snapshot while the old one drains
    assert closed == [] and swapper.is_alive()
    release.set()
    worker.join(5)
    swapper.join(5)
    assert seen == {"snapshot": old, "closed_meanwhile": []}  # nothing closed under a running request
    assert closed == ["a"]  # "keep" is used by the new snapshot: left open


def test_swap_gives_up_waiting_after_the_drain_timeout(index: EdgeIndex) -> None:
    closed: list[str] = []
    old, _ = snapshot(index, "a", closed=closed)
    new, _ = snapshot(index, "b", closed=closed)
    registry = ModelRegistry(old)
    with registry.lease():
        started = time.monotonic()
        retired = registry.swap(new, drain_timeout_s=0.2)
        assert time.monotonic() - started >= 0.2
    assert [m.name for m in retired] == ["a"] and closed == ["a"]
    registry.close()
    assert closed == ["a", "b"]


def test_a_variant_without_a_model_for_a_task_is_a_precondition_error(index: EdgeIndex) -> None:
    s = index_only_snapshot(index, "v1", "A")
    variant = s.router.route("")
    assert variant.name == "A" and s.model_for(variant, Task.SIMILAR).model_version == "v1"
    with pytest.raises(NotConfiguredError, match="variant 'A' serves no complementary model"):
        s.model_for(variant, Task.COMPLEMENTARY)
