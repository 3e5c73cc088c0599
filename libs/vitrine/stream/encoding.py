"""The encoder's per-batch logic: validate → dead-letter the bad → drop stale → encode → write.

Pure of Kafka consumption: it receives records and returns when everything it produced (vectors and
dead letters) is acknowledged, so the caller may then commit the batch's offsets.
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

from vitrine.catalog.schema import Product, ProductEvent, dedup_key
from vitrine.catalog.validation import ValidationLimits, decode_event
from vitrine.errors import InvalidEventError
from vitrine.index.port import IndexedItem, ItemPayload, Tombstone
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.dead_letters import DeadLetterSink
from vitrine.stream.records import SourceRecord, VectorChange
from vitrine.stream.sinks import VectorSink

log = logging.getLogger(__name__)


class ItemEncoder(Protocol):
    """What the encoder needs from a model (vitrine.model.serving.ServingModel provides it)."""

    model_version: str
    dim: int

    def encode_items(self, products: Sequence[Product]) -> np.ndarray: ...

    def assign_clusters(self, vectors: np.ndarray) -> np.ndarray: ...


Upsert = tuple[ProductEvent, Product, SourceRecord]


@dataclass
class BatchOutcome:
    consumed: int = 0
    encoded: int = 0
    written: int = 0
    deleted: int = 0
    stale: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)


def payload_for(product: Product, cluster: int) -> ItemPayload:
    return ItemPayload(
        title=product.title,
        brand=product.brand,
        seller=product.seller,
        category_path=product.category_path,
        price=product.price,
        currency=product.currency,
        in_stock=product.availability.purchasable,
        cluster=cluster,
        dedup_key=dedup_key(product),
    )


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

    def process(self, records: Sequence[SourceRecord], record_metrics: bool = True) -> BatchOutcome:
        """`record_metrics=False` leaves the counters to the caller (`record_metrics(outcome)`): in a
        transaction, a batch counts only once it is committed (an aborted one is retried)."""
        batch_started = time.perf_counter()
        out = BatchOutcome(consumed=len(records))
        newest: dict[str, tuple[ProductEvent, SourceRecord]] = {}
        for record in records:
            try:
                event = decode_event(record.value, record.key, self.limits)
            except InvalidEventError as e:
                self._dead_letter(record, e.reason, e.detail, out)
                continue
            current = newest.get(event.product_id)
            if current is None or event.version > current[0].version:
                if current is not None:
                    out.stale += 1  # superseded inside this batch
                newest[event.product_id] = (event, record)
            else:
                out.stale += 1

        held = self.sink.versions(list(newest))
        fresh = [(e, r) for e, r in newest.values() if e.version > held.get(e.product_id, 0)]
        out.stale += len(newest) - len(fresh)

        changes = self._encode(fresh, out)
        if changes and time.perf_counter() - batch_started > self.stall_refresh_s:
            # stalled mid-batch (paused past the session timeout?): the partitions may have a new
            # owner already; catch up with what it wrote so stale changes are dropped by the sink
            self.sink.on_assigned()
        if changes:
            started = time.perf_counter()
            result = self.sink.write(changes)
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            out.written, out.deleted, out.stale = result.written, result.deleted, out.stale + result.stale
            now = datetime.now(UTC)
            for change in changes:
                self.metrics.freshness.observe(max(0.0, (now - change.event_time).total_seconds()))
        self.dead_letters.flush()
        if record_metrics:
            self.record_metrics(out)
        return out

    def _encode(
        self, fresh: list[tuple[ProductEvent, SourceRecord]], out: BatchOutcome
    ) -> list[VectorChange]:
        version = self.model.model_version
        changes = [
            VectorChange(Tombstone(e.product_id, e.version), version, e.event_time)
            for e, _ in fresh
            if e.is_delete
        ]
        upserts = [(e, e.product, r) for e, r in fresh if e.product is not None]
        if not upserts:
            return changes
        started = time.perf_counter()
        vectors, ok = self._encode_isolating_failures(upserts, out)
        self.metrics.encode_seconds.observe(time.perf_counter() - started)
        if not ok:
            return changes
        clusters = self.model.assign_clusters(vectors)
        for (event, product, _), vector, cluster in zip(ok, vectors, clusters, strict=True):
            item = IndexedItem(event.product_id, event.version, vector, payload_for(product, int(cluster)))
            changes.append(VectorChange(item, version, event.event_time))
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
