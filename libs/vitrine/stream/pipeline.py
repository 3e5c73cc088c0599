"""The encoder's per-batch logic: validate → dead-letter the bad → drop stale → encode → write.

Pure of Kafka consumption: it receives records and returns when everything it produced (vectors and
dead letters) is acknowledged, so the caller may then commit the batch's offsets. The stored versions
are read once per batch, to plan it with the version guard (`plan_versions`) before anything is
encoded; the sink writes against that plan. A batch that took longer than `stall_refresh_s` since it
was fetched (the process stalled, and may have lost its partitions meanwhile) first lets the sink
catch up with what other encoders wrote, and is written against what is stored then.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.catalog.validation import ValidationLimits, decode_event
from vitrine.errors import InvalidEventError
from vitrine.index.port import Change, IndexedItem, Tombstone, payload_for
from vitrine.index.versioning import plan_versions
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import DeadLetterSink
from vitrine.stream.records import SourceRecord
from vitrine.stream.sinks import CatchesUp, VectorSink

log = logging.getLogger(__name__)


class ItemEncoder(Protocol):
    """What the encoder needs from a model (vitrine.model.inference.InferenceModel provides it)."""

    model_version: str
    dim: int

    def encode_items(self, products: Sequence[Product]) -> np.ndarray: ...

    def assign_clusters(self, vectors: np.ndarray) -> np.ndarray: ...

    def indexed_description(self, product: Product) -> str:
        """The part of the description the towers read (kept in the payload)."""
        ...


Upsert = tuple[ProductEvent, Product, SourceRecord]


@dataclass
class BatchOutcome:
    consumed: int = 0
    encoded: int = 0
    written: int = 0
    deleted: int = 0
    stale: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    # the group moved on before the batch was committed: nothing of it counts, its owner replays it
    fenced: bool = False

    def add(self, other: BatchOutcome) -> None:
        self.consumed += other.consumed
        self.encoded += other.encoded
        self.written += other.written
        self.deleted += other.deleted
        self.stale += other.stale
        self.dead_lettered.update(other.dead_lettered)


def encode_products(model: ItemEncoder, products: Sequence[Product], version: int = 1) -> list[IndexedItem]:
    """What the encoder writes for these products at `version`: each one's item vector, k-means
    cluster and filter payload, made by the same code as `EncoderPipeline`'s; for code that fills an
    index directly (an offline build, benchmarks, test fixtures)."""
    vectors = model.encode_items(list(products))
    return _indexed(model, [(p.product_id, version, p, None) for p in products], vectors)


def _indexed(
    model: ItemEncoder, rows: Sequence[tuple[str, int, Product, datetime | None]], vectors: np.ndarray
) -> list[IndexedItem]:
    """Items from (product id, version, product, event time) rows and their item vectors."""
    clusters = model.assign_clusters(vectors)
    return [
        IndexedItem(
            pid,
            version,
            vector,
            payload_for(product, int(cluster), model.indexed_description(product)),
            event_time,
        )
        for (pid, version, product, event_time), vector, cluster in zip(rows, vectors, clusters, strict=True)
    ]


class EncoderPipeline:
    def __init__(
        self,
        model: ItemEncoder,
        sink: VectorSink,
        dead_letters: DeadLetterSink,
        metrics: EncoderMetrics | None = None,
        limits: ValidationLimits | None = None,
        stall_refresh_s: float = 5.0,
    ) -> None:
        self.model = model
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics or EncoderMetrics()
        self.limits = limits or ValidationLimits()
        self.stall_refresh_s = stall_refresh_s

    def catch_up(self) -> None:
        """Partitions moved to this process, or it stalled: let a sink that knows what it holds from
        what it wrote (the vectors topic's) learn what other encoders wrote meanwhile."""
        if isinstance(self.sink, CatchesUp):
            self.sink.catch_up()

    def process(
        self, records: Sequence[SourceRecord], record_metrics: bool = True, fetched_at: float | None = None
    ) -> BatchOutcome:
        """`fetched_at`: `time.monotonic()` when the batch's first poll started (default: now).
        `record_metrics=False` leaves the counters to the caller (`record_metrics(outcome)`): in a
        transaction, a batch counts only once it is committed (an aborted one is retried)."""
        fetched_at = time.monotonic() if fetched_at is None else fetched_at
        out = BatchOutcome(consumed=len(records))
        events: list[tuple[ProductEvent, SourceRecord]] = []
        for record in records:
            try:
                events.append((decode_event(record.value, record.key, self.limits), record))
            except InvalidEventError as e:
                self._dead_letter(record, e.reason, e.detail, out)
        plan = plan_versions([event for event, _ in events], self.sink.versions)  # versions read once
        out.stale = plan.stale
        record_of = {id(event): record for event, record in events}  # where a poison event came from

        changes = self._encode([(e, record_of[id(e)]) for e in plan.fresh], out)
        stored: dict[str, int] | None = plan.stored
        if changes and time.monotonic() - fetched_at > self.stall_refresh_s:
            # stalled (paused past the session timeout?): the partitions may have a new owner
            # already; catch up with what it wrote and write against what is stored now
            self.catch_up()
            stored = None
        if changes:
            started = time.perf_counter()
            result = self.sink.apply(changes, stored)
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            out.written, out.deleted, out.stale = result.written, result.deleted, out.stale + result.stale
            now = datetime.now(UTC)
            for change in changes:
                if change.event_time is not None:
                    self.metrics.freshness.observe(max(0.0, (now - change.event_time).total_seconds()))
        self.dead_letters.flush()
        if record_metrics:
            self.record_metrics(out)
        return out

    def _encode(self, fresh: list[tuple[ProductEvent, SourceRecord]], out: BatchOutcome) -> list[Change]:
        changes: list[Change] = [
            Tombstone(e.product_id, e.version, e.event_time) for e, _ in fresh if e.is_delete
        ]
        upserts = [(e, e.product, r) for e, r in fresh if e.product is not None]
        if not upserts:
            return changes
        started = time.perf_counter()
        vectors, ok = self._encode_isolating_failures(upserts, out)
        self.metrics.encode_seconds.observe(time.perf_counter() - started)
        if not ok:
            return changes
        rows = [(e.product_id, e.version, product, e.event_time) for e, product, _ in ok]
        changes.extend(_indexed(self.model, rows, vectors))
        out.encoded = len(ok)
        return changes

    def _encode_isolating_failures(
        self, upserts: list[Upsert], out: BatchOutcome
    ) -> tuple[np.ndarray, list[Upsert]]:
        """Encode the batch in one call; if that fails, find the poison events one by one."""
        try:
            return self._checked(self.model.encode_items([p for _, p, _ in upserts])), upserts
        except Exception as batch_error:
            log.warning("batch encode failed (%s); isolating the failing products", batch_error)
        kept, vectors = [], []
        for event, product, record in upserts:
            try:
                vectors.append(self._checked(self.model.encode_items([product]))[0])
                kept.append((event, product, record))
            except Exception as e:
                self._dead_letter(record, "encode_failed", f"{type(e).__name__}: {e}", out)
        empty = np.zeros((0, self.model.dim), dtype=np.float32)
        return (np.stack(vectors) if vectors else empty), kept

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.ndim != 2 or vectors.shape[1] != self.model.dim or not np.all(np.isfinite(vectors)):
            raise ValueError(f"item tower returned shape {vectors.shape} or non-finite values")
        return vectors.astype(np.float32, copy=False)

    def dead_letter(
        self, record: SourceRecord, reason: str, detail: str, record_metrics: bool = True
    ) -> BatchOutcome:
        """Dead-letter one record that failed beyond its validation (the sink refused it, it broke
        the pipeline): the worker's last resort for a record that can never succeed, so its
        partition goes on. Blocks until the dead letter is acknowledged."""
        out = BatchOutcome(consumed=1)
        self._dead_letter(record, reason, detail, out)
        self.dead_letters.flush()
        if record_metrics:
            self.record_metrics(out)
        return out

    def _dead_letter(self, record: SourceRecord, reason: str, detail: str, out: BatchOutcome) -> None:
        self.dead_letters.send(record, reason, detail)
        out.dead_lettered[reason] += 1

    def record_metrics(self, out: BatchOutcome) -> None:
        m = self.metrics
        m.consumed.inc(out.consumed)
        m.encoded.inc(out.encoded)
        m.written.labels("upsert").inc(out.written)
        m.written.labels("delete").inc(out.deleted)
        m.stale.inc(out.stale)
        for reason, n in out.dead_lettered.items():
            m.dead_lettered.labels(reason).inc(n)
        m.batches.inc()
        m.batch_size.observe(out.consumed)
