"""Kafka record types and the ItemVector wire codec (catalog.vectors)."""

from __future__ import annotations

from collections.abc import Sequence
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VECTOR_FIELD = catalog_pb2.ItemVector.DESCRIPTOR.fields_by_name["vector"].number
_VECTOR_TAG = bytes([_VECTOR_FIELD << 3 | 2])  # length-delimited: a packed repeated float


def _packed_vector(vector: np.ndarray) -> bytes:
    """The packed `vector` field: its tag, its byte length (varint) and the little-endian floats;
    nothing for an empty vector, as protobuf writes no empty packed field."""
    floats = np.asarray(vector, dtype="<f4").ravel()
    size, head = floats.nbytes, bytearray(_VECTOR_TAG)
    if size == 0:
        return b""
    while size >= 0x80:
        head.append(size & 0x7F | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + floats.tobytes()


def encode_vector_changes(changes: Sequence[Change], model_version: str) -> list[bytes]:
    """`ItemVector` bytes for each change (the encoder's sink serialises a whole batch here).

    Cheaper than building every field through the protobuf API: the event time is set as seconds
    and nanos (what `Timestamp.FromDatetime` computes, without its `calendar.timegm` round trip), and
    the vector is appended to the serialised message as its packed field (protobuf parsers accept
    fields in any order), not copied float by float into a repeated field. The decoded message is
    the same (tests/unit/stream/test_records.py)."""
    out: list[bytes] = []
    for c in changes:
        pb = catalog_pb2.ItemVector(product_id=c.product_id, version=c.version, model_version=model_version)
        if c.event_time is not None:
            t = c.event_time if c.event_time.tzinfo is not None else c.event_time.replace(tzinfo=UTC)
            delta = t - _EPOCH
            pb.event_time.seconds = delta.days * 86_400 + delta.seconds
            pb.event_time.nanos = delta.microseconds * 1000
        if isinstance(c, Tombstone):
            pb.deleted = True
            out.append(pb.SerializeToString())
            continue
        p = c.payload
        payload = pb.payload
        payload.title = p.title
        payload.brand = p.brand
        payload.seller = p.seller
        payload.category_path.extend(p.category_path)
        payload.leaf_category = p.leaf_category
        payload.price = p.price if p.price is not None else -1.0
        payload.currency = p.currency
        payload.in_stock = p.in_stock
        payload.cluster = p.cluster
        payload.dedup_key = p.dedup_key
        payload.description = p.description
        out.append(pb.SerializeToString() + _packed_vector(c.vector))
    return out


def encode_vector_change(c: Change, model_version: str) -> bytes:
    return encode_vector_changes([c], model_version)[0]


def decode_vector_version(value: bytes) -> tuple[str, int]:
    """(product id, version) of an ItemVector, without building its vector and payload (what the
    vector sink's restore reads from every record of the topic)."""
    pb = catalog_pb2.ItemVector.FromString(value)
    return pb.product_id, pb.version


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
        description=p.description,
    )
    vector = np.asarray(pb.vector, dtype=np.float32)
    return VectorRecord(IndexedItem(pb.product_id, pb.version, vector, payload, event_time), pb.model_version)
