"""k-means centroids of the item space, for inspirational serving (numpy + scikit-learn, no torch)."""

from __future__ import annotations

import numpy as np


def fit_centroids(vectors: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """float32 [k', dim] centroids, k' = min(k, n // 4, distinct vectors); None when there are too few."""
    from sklearn.cluster import KMeans

    n = int(vectors.shape[0])
    distinct = len(np.unique(np.round(vectors, 6), axis=0)) if n else 0
    k = min(k, n // 4, distinct)
    if k < 2:
        return None
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed)
    kmeans.fit(vectors.astype(np.float64))
    return kmeans.cluster_centers_.astype(np.float32)


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray | None) -> np.ndarray:
    """int32 [n]: index of each vector's nearest centroid (Euclidean), -1 when there are no centroids."""
    n = int(vectors.shape[0])
    if centroids is None or len(centroids) == 0:
        return np.full(n, -1, dtype=np.int32)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid
    distances = -2.0 * vectors @ centroids.T + (centroids * centroids).sum(axis=1)
    return distances.argmin(axis=1).astype(np.int32)
