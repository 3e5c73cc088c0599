"""The version guard: the one rule every write follows, so the index never moves backwards.

Within a batch only the newest change per product counts; against what is stored, a change counts
only if its version is newer (tombstones included: a delete is stored as a versioned tombstone, so an
older upsert arriving after it is stale instead of resurrecting the product). The encoder plans its
batch of events with it before encoding (no item tower spent on stale events), and both writers, the
index adapters (`IndexAdapter.apply`) and the vectors topic's sink (`KafkaVectorSink.apply`), plan
their writes with it. The stored versions are read once per plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from vitrine.index.port import Tombstone, WriteResult


class Versioned(Protocol):
    """Anything with a product id and a version: a catalogue event, an index change."""

    @property
    def product_id(self) -> str: ...

    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)

StoredVersions = Mapping[str, int] | Callable[[Sequence[str]], Mapping[str, int]]


@dataclass
class VersionPlan(Generic[V]):
    """What of a batch is to be written, and against which stored versions it was decided."""

    fresh: list[V] = field(default_factory=list)  # newest per product, newer than stored; batch order
    superseded: int = 0  # older changes of a product that the batch also holds a newer change of
    stale_ids: list[str] = field(default_factory=list)  # newest change not newer than what is stored
    stored: dict[str, int] = field(default_factory=dict)  # the stored versions read for the plan

    @property
    def stale(self) -> int:
        return self.superseded + len(self.stale_ids)

    def result(self) -> WriteResult:
        """The result of writing `fresh` (a plan of index changes): upserts, deletes, stale."""
        deleted = sum(1 for c in self.fresh if isinstance(c, Tombstone))
        return WriteResult(
            written=len(self.fresh) - deleted,
            deleted=deleted,
            stale=self.stale,
            stale_ids=list(self.stale_ids),
        )


def plan_versions(changes: Sequence[V], stored: StoredVersions) -> VersionPlan[V]:
    """Keep the newest change per product, then only those newer than `stored` (a mapping, or a
    function reading the stored versions of the given ids, called once)."""
    newest: dict[str, V] = {}
    superseded = 0
    for change in changes:
        current = newest.get(change.product_id)
        if current is None:
            newest[change.product_id] = change
        else:
            superseded += 1
            if change.version > current.version:
                newest[change.product_id] = change
    held = dict(stored(list(newest)) if callable(stored) else stored)
    plan: VersionPlan[V] = VersionPlan(superseded=superseded, stored=held)
    for product_id, change in newest.items():
        if change.version > held.get(product_id, 0):
            plan.fresh.append(change)
        else:
            plan.stale_ids.append(product_id)
    return plan
