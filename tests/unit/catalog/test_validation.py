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
