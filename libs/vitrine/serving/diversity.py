"""Diversity helpers: interleaving ranked lists, and choosing the k-means clusters to search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def interleave(lists: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin: the first of every list (in list order), then the second of every list, ...
    Shorter lists simply drop out."""
    out: list[T] = []
    longest = max((len(x) for x in lists), default=0)
    for rank in range(longest):
        for x in lists:
            if rank < len(x):
                out.append(x[rank])
    return out


def nearest_clusters(vector: np.ndarray, centroids: np.ndarray, n: int, skip: int = 0) -> list[int]:
    """The ids of the `n` centroids nearest to `vector` after skipping the `skip` nearest (Euclidean,
    the metric the clusters were assigned with), nearest first. Fewer if there are not enough."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    # |v - c|^2 up to the constant |v|^2
    distances = (centroids * centroids).sum(axis=1) - 2.0 * (centroids @ v)
    order = np.argsort(distances, kind="stable")
    return [int(c) for c in order[skip : skip + n]]
