"""Kafka record types and the ItemVector wire codec (catalog.vectors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from vitrine.index.port import Change, IndexedItem, ItemPayload, Tombstone
from vitrine.v1 import catalog_pb2


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed Kafka record, with what a dead letter needs to point back at it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One record of a vectors topic (an `ItemVector`): a change (with the event time of the
    catalogue event behind it), and the model version whose item tower made the vector."""

    change: Change
    model_version: str

    @property
    def product_id(self) -> str:
        return self.change.product_id

    @property
    def version(self) -> int:
        return self.change.version

    @property
    def event_time(self) -> datetime | None:
        return self.change.event_time


def encode_vector_change(c: Change, model_version: str) -> bytes:
    pb = catalog_pb2.ItemVector(product_id=c.product_id, version=c.version, model_version=model_version)
    if c.event_time is not None:
        pb.event_time.FromDatetime(c.event_time)
    if isinstance(c, Tombstone):
        pb.deleted = True
    else:
        pb.vector.extend(c.vector.astype(np.float32).tolist())
        p = c.payload
        pb.payload.CopyFrom(
            catalog_pb2.ItemPayload(
                title=p.title,
                brand=p.brand,
                seller=p.seller,
                category_path=list(p.category_path),
                leaf_category=p.leaf_category,
                price=p.price if p.price is not None else -1.0,
                currency=p.currency,
                in_stock=p.in_stock,
                cluster=p.cluster,
                dedup_key=p.dedup_key,
            )
        )
    return pb.SerializeToString()


def decode_vector_change(value: bytes) -> VectorRecord:
    pb = catalog_pb2.ItemVector.FromString(value)
    event_time = pb.event_time.ToDatetime(tzinfo=UTC) if pb.HasField("event_time") else datetime.now(UTC)
    if pb.deleted:
        return VectorRecord(Tombstone(pb.product_id, pb.version, event_time), pb.model_version)
    p = pb.payload
    payload = ItemPayload(
        title=p.title,
        brand=p.brand,
        seller=p.seller,
        category_path=tuple(p.category_path),
        price=p.price if p.price >= 0 else None,
        currency=p.currency,
        in_stock=p.in_stock,
        cluster=p.cluster,
        dedup_key=p.dedup_key,
    )
    vector = np.asarray(pb.vector, dtype=np.float32)
    return VectorRecord(IndexedItem(pb.product_id, pb.version, vector, payload, event_time), pb.model_version)
