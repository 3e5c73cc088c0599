"""The worker's workaround for a rebalance that kafka-python 3.0.12 leaves unfinished (the shim it
calls, `kafka_compat.resume_interrupted_join`, is checked against real kafka-python objects in
test_kafka_compat.py)."""

from __future__ import annotations

import pytest

from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.worker import EncoderWorker


class Coordinator:
    def __init__(self, join_task: object | None, need_rejoin: bool) -> None:
        self._join_task = join_task
        self._need_rejoin = need_rejoin
        self.rejoin_requested = False

    def need_rejoin(self) -> bool:
        return self._need_rejoin

    def request_rejoin(self) -> None:
        self.rejoin_requested = True


class Consumer:
    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator


class Pipeline:
    metrics = EncoderMetrics()


@pytest.mark.parametrize(
    ("join_task", "need_rejoin", "requested"),
    [
        (object(), False, True),  # a join in flight that the next poll() would never finish
        (object(), True, False),  # a join in flight that the next poll() finishes by itself
        (None, False, False),  # no join pending: nothing to do
    ],
)
def test_an_interrupted_rebalance_is_resumed(
    join_task: object | None, need_rejoin: bool, requested: bool
) -> None:
    coordinator = Coordinator(join_task, need_rejoin)
    worker = EncoderWorker(Consumer(coordinator), "t", Pipeline())  # type: ignore[arg-type]
    worker._resume_interrupted_rebalance()
    assert coordinator.rejoin_requested is requested
