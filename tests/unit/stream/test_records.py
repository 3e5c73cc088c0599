from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np

from vitrine.index.port import IndexedItem, ItemPayload, Tombstone
from vitrine.stream.records import decode_vector_change, encode_vector_change, encode_vector_changes


def test_item_vectors_round_trip_with_payload_and_event_time() -> None:
    t = datetime(2026, 11, 23, 10, 30, 5, 123000, tzinfo=UTC)
    payload = ItemPayload(
        title="Silk tie",
        brand="Sartoria",
        seller="s-1",
        category_path=("Clothing", "Men", "Ties"),
        price=29.5,
        currency="EUR",
        in_stock=False,
        cluster=7,
        dedup_key="silk tie|sartoria",
        description="Hand-rolled edges, 100% mulberry silk.",
    )
    vector = np.linspace(-1, 1, 16, dtype=np.float32)
    change = IndexedItem("sku-1", 42, vector, payload, event_time=t)
    decoded = decode_vector_change(encode_vector_change(change, "model-a"))
    assert decoded.model_version == "model-a" and decoded.event_time == t
    assert isinstance(decoded.change, IndexedItem)
    assert decoded.change.payload == payload and decoded.change.version == 42
    np.testing.assert_array_equal(decoded.change.vector, vector)


def test_missing_price_survives_the_wire_as_none() -> None:
    change = IndexedItem("a", 1, np.zeros(4, np.float32), ItemPayload(price=None), datetime.now(UTC))
    decoded = decode_vector_change(encode_vector_change(change, "m"))
    assert isinstance(decoded.change, IndexedItem) and decoded.change.payload.price is None


def test_tombstones_round_trip() -> None:
    change = Tombstone("gone", 9, datetime(2026, 1, 1, tzinfo=UTC))
    decoded = decode_vector_change(encode_vector_change(change, "m"))
    assert decoded.change == Tombstone("gone", 9)


def _reference_encoding(c: IndexedItem | Tombstone, model_version: str) -> bytes:
    """How a02873d serialised an ItemVector: every field through the protobuf API."""
    from vitrine.v1 import catalog_pb2

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


def test_batch_encoding_is_the_same_message_as_field_by_field() -> None:
    """The fast path (seconds/nanos set directly, the packed vector appended as bytes) must decode to
    exactly what the protobuf API built, for every kind of change in one batch."""
    from vitrine.v1 import catalog_pb2

    rng = np.random.default_rng(3)
    times = [
        datetime(2026, 11, 23, 10, 30, 5, 123456, tzinfo=UTC),
        datetime(1969, 7, 20, 20, 17, 40, 999999, tzinfo=UTC),  # before the epoch: negative seconds
        datetime(2026, 1, 1, 12, 0, 0),  # naive: protobuf reads it as UTC
        datetime(2030, 5, 5, 5, 5, 5, tzinfo=timezone(timedelta(hours=-7))),
        None,
    ]
    changes: list[IndexedItem | Tombstone] = []
    for i in range(60):
        t = times[i % len(times)]
        if i % 7 == 3:
            changes.append(Tombstone(f"gone-{i}", i + 1, t))
            continue
        dim = [64, 16, 1, 0, 300][i % 5]
        vector = rng.standard_normal(dim).astype(np.float32)
        payload = ItemPayload(
            title=f"Titel ü {i}",
            brand="" if i % 3 else "Brand",
            seller=f"s-{i}",
            category_path=("A", "B", f"Leaf {i % 4}")[: i % 4],
            price=None if i % 4 == 0 else i * 1.25,
            currency="EUR",
            in_stock=bool(i % 2),
            cluster=i % 9 - 1,
            dedup_key=f"titel u {i}|brand",
        )
        changes.append(IndexedItem(f"p-{i}", 10**12 + i, vector, payload, t))
    encoded = encode_vector_changes(changes, "model-x")
    assert len(encoded) == len(changes)
    for change, fast in zip(changes, encoded, strict=True):
        expected = catalog_pb2.ItemVector.FromString(_reference_encoding(change, "model-x"))
        assert catalog_pb2.ItemVector.FromString(fast) == expected, change.product_id
        assert encode_vector_change(change, "model-x") == fast


def test_the_version_of_a_record_reads_without_decoding_the_vector() -> None:
    from vitrine.stream.records import decode_vector_version

    item = IndexedItem("p-9", 77, np.ones(8, np.float32), ItemPayload(title="x"), datetime.now(UTC))
    assert decode_vector_version(encode_vector_change(item, "m")) == ("p-9", 77)
    assert decode_vector_version(encode_vector_change(Tombstone("p-9", 78), "m")) == ("p-9", 78)
