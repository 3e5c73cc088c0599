"""Training says early how long it will take (issue 17: it gave no idea of its duration)."""

from __future__ import annotations

import logging
import time

import pytest

from vitrine.model.progress import DurationEstimate


def test_the_estimate_comes_after_the_first_steps_and_again_after_the_first_epoch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    estimate = DurationEstimate(steps_per_epoch=40, max_epochs=30, patience=3)
    with caplog.at_level(logging.INFO, logger="vitrine.model.progress"):
        for step in range(40):
            time.sleep(0.002)
            estimate.step_done(1, step)
        estimate.epoch_done(1)
        estimate.step_done(2, 0)
        estimate.epoch_done(2)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "40 steps per epoch" in messages[0] and "at most 30 epochs" in messages[0]
    assert "up to about" in messages[0]
    assert messages[1].startswith("training: epoch 1 took") and "at most 29 more" in messages[1]
