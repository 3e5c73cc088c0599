from __future__ import annotations

import pytest

from vitrine.stream.worker import BatchPolicy, CatchUp


@pytest.mark.parametrize("kwargs", [{"max_records": 0}, {"max_wait_ms": -1}, {"poll_timeout_ms": 0}])
def test_batch_policy_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="max_records"):
        BatchPolicy(**kwargs)


def test_catch_up_counts_progress_towards_the_targets() -> None:
    from kafka.structs import TopicPartition

    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    progress = CatchUp({a: 10, b: 30}, {a: 10, b: 5})
    assert (progress.done, progress.total, progress.caught_up) == (15, 40, False)
    progress.positions = {a: 12, b: 30}  # beyond the target counts as the target
    assert (progress.done, progress.caught_up) == (40, True)
