"""Property-based fuzzing of event decoding and validation: whatever bytes arrive on the products
topic, the decoder either returns a valid event or raises InvalidEventError with a known reason
(which sends the record to the dead-letter topic). Never another exception, never a crash."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.event_strategies import events

from vitrine.catalog.validation import REASONS, ValidationLimits, decode_event
from vitrine.errors import InvalidEventError
from vitrine.v1 import catalog_pb2

LIMITS = ValidationLimits()


def _check(value: bytes, key: bytes | None) -> None:
    try:
        event = decode_event(value, key, LIMITS)
    except InvalidEventError as e:
        assert e.reason in REASONS, e.reason
        assert e.detail
        return
    # accepted: then it really is valid
    assert event.product_id and event.version > 0
    if key is not None:
        assert key == event.product_id.encode()
    if event.product is not None:
        p = event.product
        assert p.title.strip() and len(p.title) <= LIMITS.max_title_chars
        assert len(p.category_path) <= LIMITS.max_category_depth
        if p.price is not None:
            assert math.isfinite(p.price) and 0 <= p.price <= LIMITS.max_price and p.currency


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.one_of(st.none(), st.binary(max_size=40)))
def test_arbitrary_bytes_never_escape_as_another_exception(value: bytes, key: bytes | None) -> None:
    _check(value, key)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.booleans())
def test_structured_but_hostile_events_are_accepted_only_when_valid(value: bytes, keyed: bool) -> None:
    key = catalog_pb2.ProductEvent.FromString(value).product_id.encode() if keyed else None
    _check(value, key)


@settings(max_examples=200, deadline=None)
@given(events(), st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=8))
def test_truncated_and_corrupted_events_are_rejected_cleanly(value: bytes, cut: int, junk: bytes) -> None:
    _check(value[: max(0, len(value) - cut)] + junk, None)


def test_invalid_utf8_in_a_string_field_is_undecodable() -> None:
    # field 2 (product_id), wire type 2, length 2, bytes that are not UTF-8
    raw = bytes([0x08, 0x01, 0x12, 0x02, 0xFF, 0xFE])
    try:
        decode_event(raw)
    except InvalidEventError as e:
        assert e.reason == "undecodable"
    else:
        raise AssertionError("invalid UTF-8 was accepted")
