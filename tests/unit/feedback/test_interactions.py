from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vitrine.errors import InvalidEventError
from vitrine.feedback.interactions import (
    REASONS,
    Interaction,
    InteractionType,
    ShownList,
    decode_interaction,
    record_key,
)
from vitrine.serving.results import Task
from vitrine.v1 import feedback_pb2

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def impression(**overrides: object) -> Interaction:
    fields: dict[str, object] = {
        "event_id": "r1",
        "unit_key": "u1",
        "type": InteractionType.IMPRESSION,
        "event_time": T0,
        "recommendation_id": "r1",
        "placement": "pdp",
        "shown": ShownList(("p1", "p2"), "exp", "b", "a", "similar-1", Task.SIMILAR),
    }
    fields.update(overrides)
    return Interaction(**fields)  # type: ignore[arg-type]


def test_an_impression_and_a_purchase_survive_the_wire() -> None:
    imp = impression()
    assert decode_interaction(imp.to_bytes(), b"u1") == imp
    buy = Interaction("e1", "u1", InteractionType.PURCHASE, T0, "p1", "r1", "pdp", 29.5, "EUR", 1, "o-1")
    assert decode_interaction(buy.to_bytes(), b"u1") == buy


def test_the_key_is_the_unit_key_or_else_the_recommendation_id() -> None:
    assert record_key("u1", "r1") == "u1"
    assert record_key("", "r1") == "r1"
    no_unit = impression(unit_key="")
    assert no_unit.key == "r1"
    assert decode_interaction(no_unit.to_bytes(), b"r1").unit_key == ""


def _pb(**fields: object) -> feedback_pb2.Interaction:
    pb = feedback_pb2.Interaction(
        schema_version=1, event_id="e", unit_key="u", type=2, product_id="p", recommendation_id="r"
    )
    pb.event_time.FromDatetime(T0)
    for name, value in fields.items():
        setattr(pb, name, value)
    return pb


def _bad_cases() -> list[tuple[str, bytes | None, bytes | None]]:
    no_time = _pb()
    no_time.ClearField("event_time")
    far = _pb()
    far.event_time.seconds = 400_000_000_000
    imp_on_click = _pb()
    imp_on_click.impression.product_ids.append("p")
    imp_no_list = _pb(type=1)
    imp_no_rec = _pb(type=1, recommendation_id="")
    imp_no_rec.impression.product_ids.append("p")
    long_list = _pb(type=1)
    long_list.impression.product_ids.extend(f"p{i}" for i in range(501))
    ok = _pb().SerializeToString()
    return [
        ("undecodable", b"\xff\xff\xff", b"u"),
        ("undecodable", None, b"u"),
        ("unknown_schema_version", _pb(schema_version=2).SerializeToString(), b"u"),
        ("unknown_type", _pb(type=9).SerializeToString(), b"u"),
        ("unknown_type", _pb(type=0).SerializeToString(), b"u"),
        ("missing_event_id", _pb(event_id="").SerializeToString(), b"u"),
        ("missing_key", _pb(unit_key="", recommendation_id="").SerializeToString(), b""),
        ("key_mismatch", ok, b"someone-else"),
        ("missing_product_id", _pb(product_id="").SerializeToString(), b"u"),
        ("bad_impression", imp_on_click.SerializeToString(), b"u"),
        ("bad_impression", imp_no_list.SerializeToString(), b"u"),
        ("bad_impression", long_list.SerializeToString(), b"u"),
        ("missing_recommendation_id", imp_no_rec.SerializeToString(), b"u"),
        ("bad_value", _pb(value=float("nan")).SerializeToString(), b"u"),
        ("bad_value", _pb(value=-1.0).SerializeToString(), b"u"),
        ("bad_value", _pb(type=4, value=10.0).SerializeToString(), b"u"),
        ("oversized_text", _pb(product_id="x" * 257).SerializeToString(), b"u"),
        ("control_character", _pb(unit_key="u\x1fx").SerializeToString(), b"u\x1fx"),
        ("bad_event_time", no_time.SerializeToString(), b"u"),
        ("bad_event_time", far.SerializeToString(), b"u"),
    ]


@pytest.mark.parametrize(("reason", "value", "key"), _bad_cases())
def test_a_bad_interaction_is_rejected_with_its_reason(
    reason: str, value: bytes | None, key: bytes | None
) -> None:
    assert reason in REASONS
    with pytest.raises(InvalidEventError) as e:
        decode_interaction(value, key)
    assert e.value.reason == reason


def test_every_reason_is_reachable() -> None:
    assert {case[0] for case in _bad_cases()} == set(REASONS)


def test_the_recorder_s_fast_path_writes_the_same_impression() -> None:
    from vitrine.feedback.interactions import impression_bytes

    fast = impression_bytes(
        "r1", "u1", "pdp", 1_793_620_800_123_456_000, ["p1", "p2"], "exp", "b", "a", "similar-1", Task.SIMILAR
    )
    assert decode_interaction(fast, b"u1") == impression(
        event_time=datetime.fromtimestamp(1_793_620_800.123456, UTC)
    )
