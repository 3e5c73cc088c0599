"""Embedded-mode adapter: a Qdrant Edge shard (the real Qdrant engine, in-process, on local disk)."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.errors import IndexBackendError
from vitrine.index.port import (
    IndexedItem,
    ItemPayload,
    ScoredItem,
    SearchFilter,
    Tombstone,
    WriteResult,
    point_id,
)

log = logging.getLogger(__name__)

# payload field -> index kind; every field a filter touches is indexed
PAYLOAD_INDEXES: dict[str, str] = {
    "product_id": "keyword",
    "deleted": "integer",  # 0/1, see ItemPayload.to_dict
    "in_stock": "integer",
    "category_path": "keyword",
    "leaf_category": "keyword",
    "seller": "keyword",
    "dedup_key": "keyword",
    "price": "float",
    "cluster": "integer",
}


@dataclass(frozen=True)
class EdgeIndexConfig:
    path: Path
    dim: int
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    search_ef: int = 128
    # below this many points a segment is searched exactly (cheap, and exact)
    full_scan_threshold: int = 10_000
    fresh: bool = False  # delete whatever is at `path` and start empty


class EdgeIndex:
    """VectorIndex on a Qdrant Edge shard. Thread-safe: writes are serialised, reads run concurrently."""

    def __init__(self, config: EdgeIndexConfig) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.config = config
        self.dim = config.dim
        self._write_lock = threading.Lock()
        if config.fresh and config.path.exists():
            shutil.rmtree(config.path)
        edge_config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=config.dim, distance=qe.Distance.Dot),
            hnsw_config=qe.HnswIndexConfig(
                m=config.hnsw_m,
                ef_construct=config.hnsw_ef_construct,
                full_scan_threshold=config.full_scan_threshold,
            ),
        )
        try:
            if config.path.exists() and any(config.path.iterdir()):
                self._shard = qe.EdgeShard.load(str(config.path), edge_config)
            else:
                config.path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(config.path), edge_config)
                self._create_payload_indexes()
        except Exception as e:
            raise IndexBackendError(f"cannot open Qdrant Edge shard at {config.path}: {e}") from e

    def _create_payload_indexes(self) -> None:
        qe = self._qe
        kinds = {
            "keyword": qe.PayloadSchemaType.Keyword,
            "float": qe.PayloadSchemaType.Float,
            "integer": qe.PayloadSchemaType.Integer,
        }
        for field_name, kind in PAYLOAD_INDEXES.items():
            self._shard.update(qe.UpdateOperation.create_field_index(field_name, kinds[kind]))

    # -- writes ---------------------------------------------------------------------------------

    def apply(self, items: Sequence[IndexedItem], tombstones: Sequence[Tombstone] = ()) -> WriteResult:
        qe = self._qe
        result = WriteResult()
        with self._write_lock:
            latest_items, latest_tombstones = _latest_per_product(items, tombstones)
            stored = self.versions([*latest_items, *latest_tombstones])
            points = []
            for pid, item in latest_items.items():
                if stored.get(pid, 0) >= item.version:
                    result.stale += 1
                    result.stale_ids.append(pid)
                    continue
                _check_vector(item.vector, self.dim, pid)
                payload = {
                    **item.payload.to_dict(),
                    "product_id": pid,
                    "version": item.version,
                    "deleted": 0,
                }
                points.append(qe.Point(point_id(pid), item.vector.astype(np.float32).tolist(), payload))
            for pid, tomb in latest_tombstones.items():
                if stored.get(pid, 0) >= tomb.version:
                    result.stale += 1
                    result.stale_ids.append(pid)
                    continue
                # A tombstone keeps the version so an older upsert arriving later stays dead.
                payload = {"product_id": pid, "version": tomb.version, "deleted": 1, "in_stock": 0}
                points.append(qe.Point(point_id(pid), [0.0] * self.dim, payload))
                result.deleted += 1
            result.written = len(points) - result.deleted
            if points:
                try:
                    self._shard.update(qe.UpdateOperation.upsert_points(points))
                except Exception as e:
                    raise IndexBackendError(f"Qdrant Edge upsert of {len(points)} points failed: {e}") from e
        return result

    def flush(self) -> None:
        with self._write_lock:
            self._shard.flush()

    # -- reads ----------------------------------------------------------------------------------

    def _records(self, product_ids: Sequence[str], with_vector: bool) -> list[Any]:
        if not product_ids:
            return []
        try:
            return list(
                self._shard.retrieve(
                    [point_id(p) for p in product_ids], with_payload=True, with_vector=with_vector
                )
            )
        except Exception as e:
            raise IndexBackendError(f"Qdrant Edge retrieve failed: {e}") from e

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        return {r.payload["product_id"]: int(r.payload["version"]) for r in self._records(product_ids, False)}

    def get(self, product_ids: Sequence[str]) -> dict[str, IndexedItem]:
        out: dict[str, IndexedItem] = {}
        for r in self._records(product_ids, True):
            if r.payload.get("deleted"):
                continue
            pid = r.payload["product_id"]
            out[pid] = IndexedItem(
                pid,
                int(r.payload["version"]),
                np.asarray(_dense(r.vector), dtype=np.float32),
                ItemPayload.from_dict(r.payload),
            )
        return out

    def search(self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None) -> list[ScoredItem]:
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=edge_filter(qe, filter or SearchFilter()),
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=max(self.config.search_ef, limit)),
        )
        try:
            hits = self._shard.query(request)
        except Exception as e:
            raise IndexBackendError(f"Qdrant Edge query failed: {e}") from e
        return [
            ScoredItem(h.payload["product_id"], float(h.score), ItemPayload.from_dict(h.payload))
            for h in hits
        ]

    def exact_search(
        self, vector: np.ndarray, limit: int, filter: SearchFilter | None = None
    ) -> list[ScoredItem]:
        """Brute-force search in the same engine: the ground truth for ANN recall."""
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=edge_filter(qe, filter or SearchFilter()),
            with_payload=True,
            params=qe.SearchParams(exact=True),
        )
        hits = self._shard.query(request)
        return [
            ScoredItem(h.payload["product_id"], float(h.score), ItemPayload.from_dict(h.payload))
            for h in hits
        ]

    def count(self) -> int:
        qe = self._qe
        live = qe.Filter(must=[qe.FieldCondition("deleted", match=qe.MatchValue(0))])
        return int(self._shard.count(qe.CountRequest(exact=True, filter=live)))

    def optimize(self) -> None:
        """Build HNSW for segments that crossed the indexing threshold (blocking)."""
        with self._write_lock:
            self._shard.optimize()

    def close(self) -> None:
        with self._write_lock:
            self._shard.flush()
            self._shard.close()


def _dense(vector: Any) -> list[float]:
    # a shard with one unnamed vector returns either the list or {"": list}
    if isinstance(vector, dict):
        return list(next(iter(vector.values())))
    return list(vector)


def _check_vector(vector: np.ndarray, dim: int, pid: str) -> None:
    if vector.shape != (dim,) or not np.all(np.isfinite(vector)):
        raise IndexBackendError(
            f"vector for {pid!r} has shape {vector.shape} or non-finite values; expected ({dim},)"
        )


def _latest_per_product(
    items: Sequence[IndexedItem], tombstones: Sequence[Tombstone]
) -> tuple[dict[str, IndexedItem], dict[str, Tombstone]]:
    """Within one batch keep only the newest change per product (an upsert and a delete may both be there)."""
    newest: dict[str, IndexedItem | Tombstone] = {}
    for change in [*items, *tombstones]:
        current = newest.get(change.product_id)
        if current is None or change.version > current.version:
            newest[change.product_id] = change
    latest_items = {k: v for k, v in newest.items() if isinstance(v, IndexedItem)}
    latest_tombs = {k: v for k, v in newest.items() if isinstance(v, Tombstone)}
    return latest_items, latest_tombs


def edge_filter(qe: Any, f: SearchFilter) -> Any:
    """Translate the port's SearchFilter into a Qdrant Edge Filter."""
    must: list[Any] = [qe.FieldCondition("deleted", match=qe.MatchValue(0))]
    must_not: list[Any] = []
    if f.in_stock_only:
        must.append(qe.FieldCondition("in_stock", match=qe.MatchValue(1)))
    if f.categories_include:
        must.append(qe.FieldCondition("category_path", match=qe.MatchAny(list(f.categories_include))))
    if f.sellers_include:
        must.append(qe.FieldCondition("seller", match=qe.MatchAny(list(f.sellers_include))))
    if f.clusters:
        must.append(qe.FieldCondition("cluster", match=qe.MatchAny(list(f.clusters))))
    if f.price_min is not None or f.price_max is not None:
        must.append(qe.FieldCondition("price", range=qe.RangeFloat(gte=f.price_min, lte=f.price_max)))
    if f.exclude_ids:
        must_not.append(qe.FieldCondition("product_id", match=qe.MatchAny(list(f.exclude_ids))))
    if f.exclude_dedup_keys:
        must_not.append(qe.FieldCondition("dedup_key", match=qe.MatchAny(list(f.exclude_dedup_keys))))
    if f.categories_exclude:
        must_not.append(qe.FieldCondition("category_path", match=qe.MatchAny(list(f.categories_exclude))))
    if f.sellers_exclude:
        must_not.append(qe.FieldCondition("seller", match=qe.MatchAny(list(f.sellers_exclude))))
    return qe.Filter(must=must, must_not=must_not or None)
