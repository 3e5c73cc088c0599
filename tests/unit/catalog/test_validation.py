from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.catalog.validation import REASONS, ValidationLimits, decode_event
from vitrine.errors import InvalidEventError
from vitrine.v1 import catalog_pb2


def _event(**product_fields: object) -> ProductEvent:
    fields = dict(
        product_id="sku-1",
        title="Silk tie",
        category_path=("Clothing", "Men", "Ties"),
        price=20.0,
        currency="EUR",
    )
    fields.update(product_fields)
    return ProductEvent.upsert(Product(**fields), 3, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]


def _reason(value: bytes | None, key: bytes | None = None, limits: ValidationLimits | None = None) -> str:
    with pytest.raises(InvalidEventError) as err:
        decode_event(value, key, limits)
    assert err.value.reason in REASONS
    return err.value.reason


def test_valid_upsert_decodes_to_the_same_event() -> None:
    event = _event()
    assert decode_event(event.to_bytes(), b"sku-1") == event


def test_valid_delete_decodes_without_product() -> None:
    event = ProductEvent.delete("sku-1", 9, datetime(2026, 1, 1, tzinfo=UTC))
    decoded = decode_event(event.to_bytes(), b"sku-1")
    assert decoded.is_delete and decoded.version == 9


def test_garbage_bytes_are_undecodable() -> None:
    assert _reason(b"\xff\xfe not protobuf at all \x00\x01") == "undecodable"


def test_null_value_is_undecodable() -> None:
    assert _reason(None) == "undecodable"


def test_unknown_schema_version_is_rejected() -> None:
    pb = _event().to_proto()
    pb.schema_version = 99
    assert _reason(pb.SerializeToString()) == "unknown_schema_version"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda pb: setattr(pb, "product_id", ""), "missing_product_id"),
        (lambda pb: setattr(pb, "version", 0), "missing_version"),
        (lambda pb: pb.ClearField("upsert"), "missing_change"),
        (lambda pb: setattr(pb.upsert, "title", "   "), "missing_title"),
        (lambda pb: setattr(pb.upsert.price, "amount", -1.0), "bad_price"),
        (lambda pb: setattr(pb.upsert.price, "amount", math.nan), "bad_price"),
        (lambda pb: setattr(pb.upsert.price, "amount", math.inf), "bad_price"),
        (lambda pb: setattr(pb.upsert.price, "currency", ""), "bad_price"),
        (lambda pb: setattr(pb.upsert, "title", "x" * 5000), "oversized_text"),
        (lambda pb: pb.upsert.category_path.extend([f"level{i}" for i in range(20)]), "bad_category_path"),
        (lambda pb: pb.upsert.category_path.append(""), "bad_category_path"),
        (lambda pb: setattr(pb.upsert, "availability", 7), "unknown_availability"),
        (lambda pb: setattr(pb.event_time, "seconds", 2**62), "bad_event_time"),
    ],
)
def test_malformed_events_are_rejected_with_their_reason(mutate: object, reason: str) -> None:
    pb = _event().to_proto()
    mutate(pb)  # type: ignore[operator]
    assert _reason(pb.SerializeToString()) == reason


def test_key_must_match_product_id() -> None:
    assert _reason(_event().to_bytes(), b"another-id") == "key_mismatch"


def test_limits_are_configurable() -> None:
    event = _event(title="a title of thirty-two characters")
    assert _reason(event.to_bytes(), limits=ValidationLimits(max_title_chars=10)) == "oversized_text"
    assert decode_event(event.to_bytes(), limits=ValidationLimits(max_title_chars=100)).product is not None


def test_raw_proto_without_event_time_still_decodes() -> None:
    pb = catalog_pb2.ProductEvent(schema_version=1, product_id="a", version=1)
    pb.delete.SetInParent()
    assert decode_event(pb.SerializeToString()).product_id == "a"


def test_an_empty_value_is_empty_not_an_unknown_schema_version() -> None:
    # issue 17: zero bytes parse as an all-default event and were reported as unknown_schema_version
    assert _reason(b"", b"sku-1") == "empty_value"


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return bytes([(number << 3) | wire_type]) + payload


def test_a_known_field_with_the_wrong_wire_type_is_rejected_naming_the_field() -> None:
    # issue 17: product_id sent as a varint was kept as an unknown field and silently ignored
    good = _event().to_bytes()
    with pytest.raises(InvalidEventError) as err:
        decode_event(good + _field(3, 2, b"\x01x"), b"sku-1")  # version (uint64) as a string
    assert err.value.reason == "bad_field_type"
    assert "version (field 3) as length-delimited" in err.value.detail


def test_a_wrong_wire_type_inside_the_product_is_found_too() -> None:
    event = _event()
    proto = event.to_proto()
    upsert = proto.upsert.SerializeToString() + _field(2, 0, b"\x07")  # description as a varint
    proto.ClearField("upsert")
    value = proto.SerializeToString() + _field(5, 2, bytes([len(upsert)]) + upsert)
    with pytest.raises(InvalidEventError) as err:
        decode_event(value, b"sku-1")
    assert err.value.reason == "bad_field_type"
    assert "upsert.description (field 2) as varint" in err.value.detail


def test_fields_this_consumer_does_not_know_are_accepted() -> None:
    # forward compatibility: a newer producer's added field (an unknown number) is not an error
    event = _event()
    assert decode_event(event.to_bytes() + _field(15, 0, b"\x01"), b"sku-1") == event
