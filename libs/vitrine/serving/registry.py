"""The models a recommender serves, and their swap on hot reload without dropping a request.

A `ServingSnapshot` is everything one request is served from: the loaded models (each with its index)
and the experiment router. It never changes; a reload builds a new one and `ModelRegistry.swap`
replaces the current snapshot atomically. Every request holds a lease on the snapshot it started with,
so a model that the new snapshot no longer uses is closed only after the last request using it ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from vitrine.index.port import VectorIndex
from vitrine.model.inference import InferenceModel
from vitrine.serving.errors import NotConfiguredError
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.results import Task

log = logging.getLogger(__name__)


def _always_ready(_timeout_s: float) -> bool:
    return True


def _no_error() -> BaseException | None:
    return None


@dataclass(eq=False)
class ServedModel:
    """One model version with the index of its item vectors.

    `model` is None for an index-only deployment (vectors computed elsewhere): Similar by product id
    works, everything that must run a tower does not. `wait_ready` blocks until the index has caught up
    with its source; `error` reports a failure of whatever keeps the index fresh (a dead feed means a
    stale replica); `closers` release the index and its feed."""

    name: str
    model_version: str
    task: str
    index: VectorIndex
    model: InferenceModel | None = None
    wait_ready: Callable[[float], bool] = _always_ready
    error: Callable[[], BaseException | None] = _no_error
    closers: tuple[Callable[[], None], ...] = ()
    key: tuple[object, ...] = ()  # what identifies it across reloads (same key = reuse as is)
    # after close, when the model is retired for good (a reload dropped it), not at a shutdown: e.g.
    # delete a local shard that a restart would otherwise reuse
    discarders: tuple[Callable[[], None], ...] = ()
    # records its index still has to apply before it is ready (None: unknown, or nothing to catch up)
    work_left: Callable[[], int | None] = lambda: None

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception:
                log.exception("closing model %s (%s) failed", self.name, self.model_version)

    def discard(self) -> None:
        self.close()
        for discard in self.discarders:
            try:
                discard()
            except Exception:
                log.exception("discarding model %s (%s) failed", self.name, self.model_version)


@dataclass(eq=False)
class ServingSnapshot:
    models: Mapping[str, ServedModel]
    router: ExperimentRouter

    def model_for(self, variant: Variant, task: Task) -> ServedModel:
        name = variant.model_for(task)
        if name is None:
            raise NotConfiguredError(f"variant {variant.name!r} serves no {task.value} model")
        return self.models[name]


class ModelRegistry:
    def __init__(self, snapshot: ServingSnapshot) -> None:
        self._current = snapshot
        self._cond = threading.Condition()
        self._leases: dict[int, int] = {}

    @property
    def current(self) -> ServingSnapshot:
        return self._current

    @contextmanager
    def lease(self) -> Iterator[ServingSnapshot]:
        """The current snapshot, kept open until the block ends."""
        with self._cond:
            snapshot = self._current
            key = id(snapshot)
            self._leases[key] = self._leases.get(key, 0) + 1
        try:
            yield snapshot
        finally:
            with self._cond:
                left = self._leases[key] - 1
                if left:
                    self._leases[key] = left
                else:
                    del self._leases[key]
                    self._cond.notify_all()

    def swap(self, new: ServingSnapshot, drain_timeout_s: float = 30.0) -> list[ServedModel]:
        """Serve `new` from now on; wait for the requests still on the old snapshot, then close the old
        models `new` does not use. Returns the models closed."""
        with self._cond:
            old, self._current = self._current, new
            drained = self._cond.wait_for(lambda: id(old) not in self._leases, timeout=drain_timeout_s)
        if not drained:
            log.warning(
                "requests still ran on the old models after %.0fs; closing them anyway", drain_timeout_s
            )
        kept = {id(m) for m in new.models.values()}
        retired = [m for m in old.models.values() if id(m) not in kept]
        for model in retired:
            model.discard()
        return retired

    def close(self) -> None:
        for model in self._current.models.values():
            model.close()
