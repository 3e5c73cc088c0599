"""What both index adapters share, written once: the port's methods on top of a few engine calls.

`IndexAdapter` implements `VectorIndex`: the version guard on writes (`plan_versions`), a change as
the point it is stored as, hits as `ScoredItem`s, `search` and `exact_search` as a batch of one, the
checks of a request that the two engines would answer differently (a limit below 1 is a ValueError; a
query vector of the wrong shape or with NaNs an IndexBackendError), and every failure of the engine,
a closed index included, raised as `IndexBackendError`. An adapter (`EdgeIndex`, `QdrantServerIndex`)
implements only the `_engine_*` methods, each one call into its engine.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from vitrine.errors import IndexBackendError
from vitrine.index.port import (
    Change,
    IndexedItem,
    ItemPayload,
    ScoredItem,
    SearchFilter,
    SearchRequest,
    Tombstone,
    WriteResult,
    point_id,
)
from vitrine.index.versioning import plan_versions

T = TypeVar("T")
Record = tuple[dict[str, Any], Sequence[float] | None]  # a stored point: payload and vector


@dataclass(frozen=True, slots=True)
class Point:
    """A change as both engines store it: a tombstone is a `deleted=1` point with a zero vector."""

    id: str
    vector: list[float]
    payload: dict[str, Any]


class IndexAdapter(ABC):
    """Base of the index adapters. Writes are serialised (a lock), reads run concurrently."""

    engine: ClassVar[str]  # how errors name the engine, e.g. "Qdrant Edge"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._write_lock = threading.Lock()
        self._closed = False

    # -- writes ---------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], stored: Mapping[str, int] | None = None) -> WriteResult:
        with self._write_lock:
            plan = plan_versions(changes, self.versions if stored is None else stored)
            points = [self._point(c) for c in plan.fresh]
            if points:
                self._call(f"upsert of {len(points)} points", self._engine_upsert, points)
        return plan.result()

    def _point(self, change: Change) -> Point:
        pid = change.product_id
        if isinstance(change, Tombstone):
            payload = {"product_id": pid, "version": change.version, "deleted": 1, "in_stock": 0}
            return Point(point_id(pid), [0.0] * self.dim, payload)
        vector = self._checked(change.vector, f"vector for {pid!r}")
        payload = {**change.payload.to_dict(), "product_id": pid, "version": change.version, "deleted": 0}
        return Point(point_id(pid), vector.tolist(), payload)

    def optimize(self) -> None:
        with self._write_lock:
            self._call("optimize", self._engine_optimize)

    def flush(self) -> None:
        with self._write_lock:
            self._call("flush", self._engine_flush)

    def point_alias(self, alias: str) -> None:
        raise IndexBackendError(f"{self.engine} has no aliases; {alias!r} needs a Qdrant server")

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._call("close", self._engine_close)
            self._closed = True

    # -- reads ----------------------------------------------------------------------------------

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        records = self._records(product_ids, with_vector=False)
        return {payload["product_id"]: int(payload["version"]) for payload, _ in records}

    def get(self, product_ids: Sequence[str]) -> dict[str, IndexedItem]:
        out: dict[str, IndexedItem] = {}
        for payload, vector in self._records(product_ids, with_vector=True):
            if payload.get("deleted"):
                continue
            pid = payload["product_id"]
            v = np.asarray(vector, dtype=np.float32)
            out[pid] = IndexedItem(pid, int(payload["version"]), v, ItemPayload.from_dict(payload))
        return out

    def _records(self, product_ids: Sequence[str], with_vector: bool) -> list[Record]:
        if not product_ids:
            return []
        ids = [point_id(p) for p in product_ids]
        return self._call("retrieve", self._engine_retrieve, ids, with_vector)

    def search(self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None) -> list[ScoredItem]:
        return self._search([SearchRequest(vector, limit, filter)], exact=False)[0]

    def exact_search(
        self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None
    ) -> list[ScoredItem]:
        return self._search([SearchRequest(vector, limit, filter)], exact=True)[0]

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[ScoredItem]]:
        return self._search(requests, exact=False)

    def _search(self, requests: Sequence[SearchRequest], exact: bool) -> list[list[ScoredItem]]:
        if not requests:
            return []
        for r in requests:
            if r.limit < 1:
                raise ValueError(f"a search limit must be >= 1, got {r.limit}")
        checked = [
            SearchRequest(self._checked(r.vector, "the query vector"), r.limit, r.filter, r.mmr)
            for r in requests
        ]
        what = f"query of {len(checked)}" if len(checked) > 1 else "query"
        results = self._call(what, self._engine_query, checked, exact)
        return [
            [
                ScoredItem(h.payload["product_id"], float(h.score), ItemPayload.from_dict(h.payload))
                for h in hits
            ]
            for hits in results
        ]

    def count(self) -> int:
        return int(self._call("count", self._engine_count))

    # -- helpers --------------------------------------------------------------------------------

    def _checked(self, vector: np.ndarray, what: str) -> np.ndarray:
        v = np.asarray(vector, dtype=np.float32)
        if v.shape != (self.dim,) or not np.all(np.isfinite(v)):
            raise IndexBackendError(
                f"{what} has shape {v.shape} or non-finite values; expected ({self.dim},) finite",
                retriable=False,
            )
        return v

    def _call(self, what: str, call: Callable[..., T], *args: Any) -> T:
        """Run one engine call; whatever it raises becomes an IndexBackendError naming the engine."""
        if self._closed:
            raise IndexBackendError(f"{self.engine} index is closed ({what})")
        try:
            return call(*args)
        except IndexBackendError:
            raise
        except Exception as e:
            raise IndexBackendError(
                f"{self.engine} {what} failed: {e}", retriable=self._engine_retriable(e)
            ) from e

    def _engine_retriable(self, error: Exception) -> bool:
        """Whether an engine failure may pass (unavailable) or is about what it was given (refused).
        An in-process engine is never unavailable: what it refuses, it refuses every time; only I/O
        errors (a full disk) may pass."""
        return isinstance(error, OSError)

    # -- the engine: one call each ---------------------------------------------------------------

    @abstractmethod
    def _engine_upsert(self, points: list[Point]) -> None: ...

    @abstractmethod
    def _engine_retrieve(self, point_ids: list[str], with_vector: bool) -> list[Record]:
        """(payload, vector) of the points that exist; the vector is None without `with_vector`."""

    @abstractmethod
    def _engine_query(self, requests: list[SearchRequest], exact: bool) -> list[list[Any]]:
        """Hits with `.payload` and `.score`, one list per request."""

    @abstractmethod
    def _engine_count(self) -> int:
        """Live (not deleted) points."""

    @abstractmethod
    def _engine_optimize(self) -> None: ...

    @abstractmethod
    def _engine_flush(self) -> None: ...

    @abstractmethod
    def _engine_close(self) -> None: ...
