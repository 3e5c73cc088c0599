"""Experiments: several variants served side by side, chosen per request by a deterministic split.

A variant names the model that serves each task. The split hashes `salt + unit key` (a user or
session id) to a point in [0, 1) and walks the variants' cumulative weights, so the same unit always
lands in the same variant, in every replica and after every restart; changing the salt reshuffles the
units for a new experiment. Requests without a unit key get the control: the first variant with a
weight. A variant of weight 0 gets no traffic of its own: it serves only requests that name it (QA, a
model being checked before it takes traffic).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from vitrine.errors import ConfigError, InvalidRequestError
from vitrine.serving.results import Task

DEFAULT_VARIANT = "default"


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float = 1.0
    similar: str | None = None  # model names; None = the task is not served in this variant
    complementary: str | None = None
    inspire: str | None = None

    def model_for(self, task: Task) -> str | None:
        return {
            Task.SIMILAR: self.similar,
            Task.COMPLEMENTARY: self.complementary,
            Task.INSPIRE: self.inspire,
        }[task]


def unit_point(salt: str, unit_key: str) -> float:
    """A stable point in [0, 1) for a unit: the first 8 bytes of BLAKE2b(salt, key)."""
    digest = hashlib.blake2b(unit_key.encode(), key=salt.encode()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class ExperimentRouter:
    def __init__(self, variants: Sequence[Variant], salt: str = "vitrine") -> None:
        if not variants:
            raise ConfigError("an experiment needs at least one variant")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"variant names must be unique, got {names}")
        if any(not v.weight >= 0 for v in variants) or not any(v.weight > 0 for v in variants):
            raise ConfigError("variant weights must be >= 0, and at least one > 0")
        self.variants = tuple(variants)
        self.salt = salt
        total = sum(v.weight for v in variants)
        self._bounds = [b / total for b in accumulate(v.weight for v in variants)]
        self._by_name = {v.name: v for v in variants}
        self._weighted = [v for v in variants if v.weight > 0]

    @property
    def control(self) -> Variant:
        return self._weighted[0]

    def assign(self, unit_key: str) -> Variant:
        if not unit_key:
            return self.control
        point = unit_point(self.salt, unit_key)
        for variant, bound in zip(self.variants, self._bounds, strict=True):
            if point < bound:  # a weight-0 variant spans no interval: never chosen here
                return variant
        return self._weighted[-1]  # float rounding at the very top

    def route(self, unit_key: str, forced: str = "") -> Variant:
        """The variant that serves a request: the forced one if named, else the unit's."""
        if not forced:
            return self.assign(unit_key)
        variant = self._by_name.get(forced)
        if variant is None:
            raise InvalidRequestError(f"unknown variant {forced!r}; configured: {', '.join(self._by_name)}")
        return variant
