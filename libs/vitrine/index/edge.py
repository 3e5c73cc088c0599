"""Embedded-mode adapter: a Qdrant Edge shard (the real Qdrant engine, in-process, on local disk)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitrine.errors import IndexBackendError
from vitrine.index.base import IndexAdapter, Point, Record
from vitrine.index.layout import (
    DEFAULT_FULL_SCAN_POINTS,
    PAYLOAD_FIELDS,
    PayloadField,
    full_scan_threshold_kb,
)
from vitrine.index.port import SearchFilter, SearchRequest
from vitrine.index.qdrant_filter import FilterModels, build_filter, live_filter
from vitrine.index.shard_state import check_not_foreign, remove_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeIndexConfig:
    path: Path
    dim: int
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    search_ef: int = 128
    # a filtered query matching fewer points is scanned exactly; see vitrine.index.layout
    full_scan_points: int = DEFAULT_FULL_SCAN_POINTS
    # a segment gets its HNSW graph once it holds this many points (None: Qdrant's default, ~10 MB
    # of vectors); small values let tests exercise the graph on a few thousand points
    indexing_threshold_points: int | None = None
    payload_fields: Mapping[str, PayloadField] = field(default_factory=lambda: dict(PAYLOAD_FIELDS))
    fresh: bool = False  # delete the shard at `path` (only one vitrine made) and start empty
    # A write-ahead log makes every update durable on its own. A replica's shard is a cache rebuilt
    # from the vectors topic at start, so it can go without (less disk I/O and memory per update).
    wal: bool = True
    # Threads of the shard's search pool, which searches a query's segments in parallel. 1 (default)
    # = searched in the calling thread: requests already run in parallel on the gRPC handler threads,
    # and handing each query to a pool cost more CPU than it saved (bench/serving_overhead.py, issue
    # 19); 0 or None = a pool of one thread per CPU, as Qdrant Edge's default.
    search_threads: int | None = 1


def _search_threads(configured: int | None) -> int:
    """Always a number: a shard stores its EdgeConfig, and `EdgeShard.load` with
    max_search_threads=None keeps the stored value instead of Qdrant Edge's default."""
    return configured or os.cpu_count() or 1


class EdgeIndex(IndexAdapter):
    """VectorIndex on a Qdrant Edge shard. Thread-safe: writes are serialised, reads run concurrently."""

    engine = "Qdrant Edge"

    def __init__(self, config: EdgeIndexConfig) -> None:
        import qdrant_edge as qe

        super().__init__(config.dim)
        self._qe = qe
        self._models = FilterModels(qe.Filter, qe.FieldCondition, qe.MatchValue, qe.MatchAny, qe.RangeFloat)
        self.config = config
        if config.fresh:
            remove_shard(config.path)  # only a shard vitrine made: anything else is refused
        else:
            check_not_foreign(config.path)
        edge_config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=config.dim, distance=qe.Distance.Dot),
            hnsw_config=qe.HnswIndexConfig(
                m=config.hnsw_m,
                ef_construct=config.hnsw_ef_construct,
                full_scan_threshold=full_scan_threshold_kb(config.full_scan_points, config.dim),
                payload_m=config.hnsw_m,
            ),
            optimizers=None
            if config.indexing_threshold_points is None
            else qe.EdgeOptimizersConfig(
                indexing_threshold=full_scan_threshold_kb(config.indexing_threshold_points, config.dim)
            ),
            wal_enabled=config.wal,
            max_search_threads=_search_threads(config.search_threads),
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
        for field_name, spec in self.config.payload_fields.items():
            if spec.kind == "keyword":
                params: Any = qe.KeywordIndexParams(enable_hnsw=spec.graph)
            elif spec.kind == "integer":
                params = qe.IntegerIndexParams(lookup=True, range=False, enable_hnsw=spec.graph)
            else:
                params = qe.FloatIndexParams(enable_hnsw=spec.graph)
            self._shard.update(qe.UpdateOperation.create_field_index(field_name, params))

    def indexed_points(self) -> int:
        """Points whose segment has its HNSW graph (the rest are searched exactly)."""
        return int(self._call("info", self._shard.info).indexed_vectors_count)

    # -- the engine -----------------------------------------------------------------------------

    def _engine_upsert(self, points: list[Point]) -> None:
        qe = self._qe
        self._shard.update(
            qe.UpdateOperation.upsert_points([qe.Point(p.id, p.vector, p.payload) for p in points])
        )

    def _engine_retrieve(self, point_ids: list[str], with_vector: bool) -> list[Record]:
        ids: list[Any] = list(point_ids)  # the shard takes ints, UUIDs or strings
        records = self._shard.retrieve(ids, with_payload=True, with_vector=with_vector)
        return [(r.payload or {}, _dense(r.vector) if with_vector else None) for r in records]

    def _engine_query(self, requests: list[SearchRequest], exact: bool) -> list[list[Any]]:
        qe = self._qe
        queries = []
        for r in requests:
            vector = r.vector.tolist()
            if r.mmr is None:
                query: Any = qe.Query.Nearest(vector)
                ef = max(self.config.search_ef, r.limit)
            else:
                # Edge takes MMR's lambda (weight of relevance); the port speaks Qdrant's `diversity`
                candidates = max(r.mmr.candidates, r.limit)
                query = qe.Mmr(vector, 1.0 - r.mmr.diversity, candidates)
                ef = max(self.config.search_ef, candidates)
            queries.append(
                qe.QueryRequest(
                    limit=r.limit,
                    query=query,
                    filter=build_filter(self._models, r.filter or SearchFilter()),
                    with_payload=True,
                    params=qe.SearchParams(exact=True) if exact else qe.SearchParams(hnsw_ef=ef),
                )
            )
        return [list(hits) for hits in self._shard.query_batch(qe.QueryBatchRequest(queries))]

    def _engine_count(self) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True, filter=live_filter(self._models))))

    def _engine_optimize(self) -> None:
        """Build HNSW for segments that crossed the indexing threshold, then flush (blocking).

        The flush matters as much as the graph: Qdrant Edge keeps every superseded point version's
        storage until a flush marks it reusable, so a replica that only applied updates grew by ~0.35 KB
        per update (docs/RELIABILITY.md, soak). Callers run this periodically while writing.
        """
        self._shard.optimize()
        self._shard.flush()

    def _engine_flush(self) -> None:
        self._shard.flush()

    def _engine_close(self) -> None:
        self._shard.flush()
        self._shard.close()


def _dense(vector: Any) -> list[float]:
    # a shard with one unnamed vector returns either the list or {"": list}
    return list(next(iter(vector.values()))) if isinstance(vector, dict) else list(vector)
