"""Server-mode adapter: a Qdrant server (or cluster) through qdrant-client, gRPC preferred.

The collection is created with the model's vector size, dot-product distance (vectors are
L2-normalised), HNSW settings and a payload index on every field a filter touches. Readers address an
alias (e.g. `vitrine-similar`) that is switched atomically to a new model's collection after its
backfill completed: a zero-downtime model switch. Tests run this very code against qdrant-client's
in-process mode (`url=":memory:"` or a local path).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from vitrine.errors import IndexBackendError
from vitrine.index.base import IndexAdapter, Point, Record
from vitrine.index.layout import DEFAULT_FULL_SCAN_POINTS, PAYLOAD_FIELDS, full_scan_threshold_kb
from vitrine.index.port import SearchFilter, SearchRequest
from vitrine.index.qdrant_filter import FilterModels, build_filter, live_filter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QdrantServerConfig:
    url: str  # "http://qdrant:6333", or ":memory:" / a local path for qdrant-client's in-process mode
    collection: str
    dim: int
    api_key: str | None = field(default=None, repr=False)
    prefer_grpc: bool = True
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    search_ef: int = 128
    full_scan_points: int = DEFAULT_FULL_SCAN_POINTS  # see vitrine.index.layout
    shards: int = 1
    replicas: int = 1
    timeout_s: int = 10
    # creating the collection at start: a Qdrant still starting, slow, or busy with another replica's
    # create is retried (1, 2, 4, 8 s apart) before the service gives up with a clear error
    create_attempts: int = 5


def make_client(config: QdrantServerConfig) -> Any:
    from qdrant_client import QdrantClient

    if config.url == ":memory:":
        return QdrantClient(location=":memory:")
    if "://" not in config.url:
        return QdrantClient(path=config.url)  # in-process, persisted to a folder
    return QdrantClient(
        url=config.url, api_key=config.api_key, prefer_grpc=config.prefer_grpc, timeout=config.timeout_s
    )


class QdrantServerIndex(IndexAdapter):
    """VectorIndex on a Qdrant collection (or alias). Writes are serialised per process; Kafka's
    partitioning guarantees one writer per product across processes."""

    engine = "Qdrant"

    def __init__(self, config: QdrantServerConfig, client: Any | None = None, create: bool = True) -> None:
        from qdrant_client import models

        super().__init__(config.dim)
        self._m = models
        self._models = FilterModels(
            models.Filter, models.FieldCondition, models.MatchValue, models.MatchAny, models.Range
        )
        self.config = config
        self.client = client if client is not None else make_client(config)
        self.collection = config.collection
        if create:
            self.ensure_collection()

    def ensure_collection(self) -> bool:
        """Create the collection with its payload indexes if it does not exist; True if created. Two
        replicas starting together may both try: a create refused because the other replica's got there
        first finds the collection; one that timed out on a busy server (transient, by the engine's own
        classification) is tried again 1, 2, 4, 8 s later; any other refusal is final."""
        attempt = 0
        while True:
            try:
                return self._create_collection()
            except IndexBackendError as e:
                if not e.retriable and self._exists_now():
                    return False  # another replica's create won the race
                attempt += 1
                if not e.retriable or attempt >= self.config.create_attempts:
                    raise
                log.warning("%s; retrying in %d s", e, 1 << (attempt - 1))
                time.sleep(1 << (attempt - 1))

    def _exists_now(self) -> bool:
        try:
            return bool(self.client.collection_exists(self.collection))
        except Exception:  # the create's own error is the one to report
            return False

    def _create_collection(self) -> bool:
        m = self._m
        try:
            if self.client.collection_exists(self.collection):
                return False
            self.client.create_collection(
                self.collection,
                vectors_config=m.VectorParams(size=self.dim, distance=m.Distance.DOT),
                hnsw_config=m.HnswConfigDiff(
                    m=self.config.hnsw_m,
                    ef_construct=self.config.hnsw_ef_construct,
                    full_scan_threshold=full_scan_threshold_kb(self.config.full_scan_points, self.dim),
                    payload_m=self.config.hnsw_m,
                ),
                shard_number=self.config.shards,
                replication_factor=self.config.replicas,
            )
            for field_name, spec in PAYLOAD_FIELDS.items():
                self.client.create_payload_index(
                    self.collection, field_name, _index_params(m, spec.kind, spec.graph), wait=True
                )
        except Exception as e:
            raise IndexBackendError(
                f"cannot create Qdrant collection {self.collection!r}: {e}",
                retriable=self._engine_retriable(e),
            ) from e
        log.info("created Qdrant collection %s (dim %d)", self.collection, self.dim)
        return True

    def point_alias(self, alias: str) -> None:
        """Atomically make `alias` name this collection (the zero-downtime switch)."""
        self._call(f"alias {alias!r}", self._engine_point_alias, alias)

    # -- the engine -----------------------------------------------------------------------------

    def _engine_point_alias(self, alias: str) -> None:
        m = self._m
        operations: list[Any] = []
        existing = {a.alias_name for a in self.client.get_aliases().aliases}
        if alias in existing:
            operations.append(m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=alias)))
        operations.append(
            m.CreateAliasOperation(
                create_alias=m.CreateAlias(collection_name=self.collection, alias_name=alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def _engine_upsert(self, points: list[Point]) -> None:
        """A conditional write keyed on the version: an existing point is replaced only if the
        version it holds is older than the one written (`update_filter`, evaluated by Qdrant per point
        as it applies the write; a point that does not exist is inserted). The versions the encoder
        read before encoding may be out of date by the time it writes (a zombie paused past its
        membership, two encoders holding one product's events after partitions were added): the
        server still never moves a point backwards, whoever writes last."""
        m = self._m
        structs = [m.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
        older = m.Filter(
            should=[
                m.Filter(
                    must=[
                        m.HasIdCondition(has_id=[p.id]),
                        m.FieldCondition(key="version", range=m.Range(lt=p.payload["version"])),
                    ]
                )
                for p in points
            ]
        )
        self.client.upsert(self.collection, points=structs, wait=True, update_filter=older)

    def _engine_retrieve(self, point_ids: list[str], with_vector: bool) -> list[Record]:
        records = self.client.retrieve(
            self.collection, point_ids, with_payload=True, with_vectors=with_vector
        )
        return [(r.payload, r.vector if with_vector else None) for r in records]

    def _engine_query(self, requests: list[SearchRequest], exact: bool) -> list[list[Any]]:
        m = self._m
        queries = []
        for r in requests:
            vector = r.vector.tolist()
            if r.mmr is None:
                query: Any = vector
                ef = max(self.config.search_ef, r.limit)
            else:
                candidates = max(r.mmr.candidates, r.limit)
                query = m.NearestQuery(
                    nearest=vector, mmr=m.Mmr(diversity=r.mmr.diversity, candidates_limit=candidates)
                )
                ef = max(self.config.search_ef, candidates)
            queries.append(
                m.QueryRequest(
                    query=query,
                    filter=build_filter(self._models, r.filter or SearchFilter()),
                    params=m.SearchParams(exact=True) if exact else m.SearchParams(hnsw_ef=ef),
                    limit=r.limit,
                    with_payload=True,
                )
            )
        return [list(r.points) for r in self.client.query_batch_points(self.collection, queries)]

    def _engine_count(self) -> int:
        return int(
            self.client.count(self.collection, count_filter=live_filter(self._models), exact=True).count
        )

    def _engine_optimize(self) -> None:
        """Nothing to do: the Qdrant server runs its optimizers in the background."""

    def _engine_flush(self) -> None:
        """Nothing to do: upserts return once the server has applied them (`wait=True`)."""

    def _engine_close(self) -> None:
        self.client.close()

    def _engine_retriable(self, error: Exception) -> bool:
        """A Qdrant server that answered 4xx (or INVALID_ARGUMENT) refused what it was sent, which no
        retry changes; anything else (no connection, a timeout, 5xx, UNAVAILABLE) may pass."""
        status = getattr(error, "status_code", None)
        if isinstance(status, int):
            return not 400 <= status < 500 or status in (408, 429)
        code = getattr(error, "code", None)
        if callable(code):  # a grpc.RpcError
            try:
                name = getattr(code(), "name", "")
            except Exception:
                return True
            return name not in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "NOT_FOUND")
        # qdrant-client's local mode and model validation raise ValueError / pydantic errors for
        # what it refuses; transport failures are httpx / OS errors
        return not isinstance(error, ValueError | TypeError | OverflowError)


def _index_params(m: Any, kind: str, graph: bool) -> Any:
    if kind == "keyword":
        return m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, enable_hnsw=graph)
    if kind == "integer":
        return m.IntegerIndexParams(
            type=m.IntegerIndexType.INTEGER, lookup=True, range=False, enable_hnsw=graph
        )
    return m.FloatIndexParams(type=m.FloatIndexType.FLOAT, enable_hnsw=graph)
