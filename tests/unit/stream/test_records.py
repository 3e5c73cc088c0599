from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from vitrine.index.port import IndexedItem, ItemPayload, Tombstone
from vitrine.stream.records import decode_vector_change, encode_vector_change


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
