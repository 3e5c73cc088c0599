"""How long training will take, said early: after the first steps, then after the first epoch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FIRST_STEPS = 5  # steps timed before the first estimate


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class DurationEstimate:
    """Logs the expected training time: steps per epoch x epochs at most (early stopping, `patience`
    epochs without improvement, usually ends sooner)."""

    steps_per_epoch: int
    max_epochs: int
    patience: int
    _started: float = field(default_factory=time.perf_counter)
    _epoch_started: float = field(default_factory=time.perf_counter)
    _epoch: int = 0
    said_steps: bool = False

    def step_done(self, epoch: int, step: int) -> None:
        """After step `step` (0-based) of `epoch` (1-based)."""
        if epoch != 1 or self.said_steps or step + 1 < min(FIRST_STEPS, self.steps_per_epoch):
            return
        self.said_steps = True
        per_step = (time.perf_counter() - self._started) / (step + 1)
        epoch_s = per_step * self.steps_per_epoch
        log.info(
            "training: %.2f s per step, %d steps per epoch: about %s per epoch before validation, "
            "at most %d epochs (early stopping after %d without improvement): up to about %s",
            per_step,
            self.steps_per_epoch,
            _duration(epoch_s),
            self.max_epochs,
            self.patience,
            _duration(epoch_s * self.max_epochs),
        )

    def epoch_done(self, epoch: int) -> None:
        now = time.perf_counter()
        took, self._epoch_started = now - self._epoch_started, now
        if epoch == 1 and self.max_epochs > 1:
            left = took * (self.max_epochs - 1)
            log.info(
                "training: epoch 1 took %s with validation; at most %d more: up to about %s left",
                _duration(took),
                self.max_epochs - 1,
                _duration(left),
            )
