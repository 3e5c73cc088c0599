"""Versioned writes, once for both adapters: which points to write so the index never moves backwards.

Within a batch only the newest change per product counts; against the index, a change is written
only if its version is newer than the stored one (tombstones included). A delete is written as a
tombstone point (`deleted=1`, zero vector, the delete's version) so an older upsert arriving after it
is recognised as stale instead of resurrecting the product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitrine.errors import IndexBackendError
from vitrine.index.port import IndexedItem, Tombstone, WriteResult, point_id


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    id: str
    vector: list[float]
    payload: dict[str, Any]


def plan_points(
    items: Sequence[IndexedItem],
    tombstones: Sequence[Tombstone],
    stored_versions: Callable[[Sequence[str]], dict[str, int]],
    dim: int,
) -> tuple[list[PlannedPoint], WriteResult]:
    newest: dict[str, IndexedItem | Tombstone] = {}
    for change in [*items, *tombstones]:
        current = newest.get(change.product_id)
        if current is None or change.version > current.version:
            newest[change.product_id] = change
    stored = stored_versions(list(newest))
    result = WriteResult()
    points: list[PlannedPoint] = []
    for pid, change in newest.items():
        if stored.get(pid, 0) >= change.version:
            result.stale += 1
            result.stale_ids.append(pid)
        elif isinstance(change, Tombstone):
            payload = {"product_id": pid, "version": change.version, "deleted": 1, "in_stock": 0}
            points.append(PlannedPoint(point_id(pid), [0.0] * dim, payload))
            result.deleted += 1
        else:
            vector = change.vector
            if vector.shape != (dim,) or not np.all(np.isfinite(vector)):
                raise IndexBackendError(
                    f"vector for {pid!r} has shape {vector.shape} or non-finite values; expected ({dim},)"
                )
            payload = {**change.payload.to_dict(), "product_id": pid, "version": change.version, "deleted": 0}
            points.append(PlannedPoint(point_id(pid), vector.astype(np.float32).tolist(), payload))
            result.written += 1
    return points, result
