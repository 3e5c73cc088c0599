from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vitrine.feedback import attribution as a
from vitrine.feedback.attribution import AttributionConfig, PartitionState
from vitrine.feedback.changelog import changelog_records, restore_record
from vitrine.feedback.interactions import Interaction, InteractionType, ShownList

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ARM = ("exp", "b", "pdp")


def shown(
    rec: str,
    unit: str = "u1",
    at: float = 0.0,
    variant: str = "b",
    products: tuple[str, ...] = ("p1", "p2", "p3"),
) -> Interaction:
    return Interaction(
        rec,
        unit,
        InteractionType.IMPRESSION,
        T0 + timedelta(seconds=at),
        recommendation_id=rec,
        placement="pdp",
        shown=ShownList(products, "exp", variant, "a"),
    )


def outcome(
    kind: InteractionType, rec: str, product: str, at: float, event: str, value: float = 0.0
) -> Interaction:
    return Interaction(
        event,
        "u1",
        kind,
        T0 + timedelta(seconds=at),
        product_id=product,
        recommendation_id=rec,
        value=value,
        currency="EUR" if value else "",
    )


CLICK, CART, BUY = InteractionType.CLICK, InteractionType.ADD_TO_CART, InteractionType.PURCHASE


def test_outcomes_count_once_for_their_list_inside_the_window() -> None:
    s = PartitionState(AttributionConfig(window_s=600, clock_skew_s=5, lateness_s=60))
    assert s.apply(shown("r1")) == a.COUNTED
    assert s.apply(shown("r1")) == a.DUPLICATE  # a producer retry of the impression
    assert s.apply(outcome(CLICK, "r1", "p1", 10, "e1")) == a.COUNTED
    assert s.apply(outcome(CLICK, "r1", "p1", 11, "e1")) == a.DUPLICATE
    assert s.apply(outcome(CLICK, "r1", "p1", 12, "e2")) == a.REPEAT_CLICK
    assert s.apply(outcome(CLICK, "r1", "p2", 13, "e3")) == a.COUNTED
    assert s.apply(outcome(CLICK, "r1", "p9", 14, "e4")) == a.NOT_IN_LIST
    assert s.apply(outcome(CART, "r1", "p2", 15, "e5")) == a.COUNTED
    assert s.apply(outcome(BUY, "r1", "p2", 16, "e6", 30.0)) == a.COUNTED
    assert s.apply(outcome(BUY, "r1", "p2", 601, "e7", 30.0)) == a.OUTSIDE_WINDOW
    assert s.apply(outcome(CLICK, "r1", "p3", -6, "e8")) == a.OUTSIDE_WINDOW  # before the impression
    assert s.apply(outcome(CLICK, "r9", "p1", 20, "e9")) == a.UNKNOWN_RECOMMENDATION
    assert s.apply(outcome(CLICK, "", "p1", 20, "e10")) == a.ORGANIC
    unit = s.units[(*ARM, "u1")]
    assert (unit.impressions, unit.clicks, unit.add_to_carts, unit.conversions, unit.revenue) == (
        1,
        2,
        1,
        1,
        30.0,
    )
    assert s.arms[ARM].clicks == 2 and s.controls[ARM] == "a"


def test_lists_without_a_unit_key_are_not_randomised_and_not_counted() -> None:
    s = PartitionState()
    assert s.apply(shown("r1", unit="")) == a.NOT_RANDOMISED
    assert s.arms == {}


def test_a_list_closes_when_the_watermark_passes_its_window_and_late_ones_are_refused() -> None:
    s = PartitionState(AttributionConfig(window_s=100, clock_skew_s=0, lateness_s=50))
    s.apply(shown("r1", at=0))
    s.apply(shown("r2", unit="u2", at=120))
    assert s.close_expired() == 0  # 0 + 150 s is not passed yet
    s.apply(shown("r3", unit="u3", at=151))
    assert s.close_expired() == 1 and "r1" not in s.lists
    assert s.apply(outcome(CLICK, "r1", "p1", 90, "late")) == a.UNKNOWN_RECOMMENDATION
    assert s.apply(shown("r0", unit="u4", at=0)) == a.LATE_IMPRESSION
    assert s.take_changes().lists["r1"] is None  # the changelog gets a tombstone


def test_arm_sums_are_the_sums_over_units() -> None:
    s = PartitionState()
    for i in range(30):
        unit = f"u{i % 7}"
        s.apply(shown(f"r{i}", unit=unit, at=i))
        for j in range(i % 3):
            s.apply(outcome(CLICK, f"r{i}", f"p{j + 1}", i + 1, f"c{i}-{j}"))
    totals = s.arms[ARM]
    units = [u for k, u in s.units.items() if k[:3] == ARM]
    assert totals.units == len(units) == 7
    assert totals.impressions == sum(u.impressions for u in units) == 30
    assert totals.clicks_sq == sum(u.clicks**2 for u in units)
    assert totals.impressions_clicks == sum(u.impressions * u.clicks for u in units)


def test_the_changelog_restores_exactly_the_state_it_was_written_from() -> None:
    config = AttributionConfig(window_s=100, clock_skew_s=0, lateness_s=0)
    s = PartitionState(config)
    log: dict[bytes, bytes | None] = {}  # a compacted topic: the last value per key
    events = [
        shown("r1", at=0),
        outcome(CLICK, "r1", "p1", 5, "e1"),
        shown("r2", unit="u2", at=50, variant="a"),
        outcome(BUY, "r2", "p3", 60, "e2", 12.5),
        shown("r3", at=130),  # closes r1
        outcome(CLICK, "r3", "p2", 131, "e3"),
    ]
    for e in events:
        s.apply(e)
        s.close_expired()
        log.update(changelog_records(s, s.take_changes()))
    restored = PartitionState(config)
    for key, value in log.items():
        restore_record(restored, key, value)
    restored.restored()
    assert restored.lists == s.lists and set(restored.lists) == {"r2", "r3"}
    assert restored.units == s.units
    assert restored.arms == s.arms
    assert restored.controls == s.controls
    assert restored.watermark_ms == s.watermark_ms
    # and it goes on identically: a duplicate is still a duplicate, a new click still counts
    for state in (s, restored):
        assert state.apply(outcome(CLICK, "r3", "p2", 132, "e3")) == a.DUPLICATE
        assert state.apply(outcome(CLICK, "r3", "p3", 133, "e4")) == a.COUNTED
    assert restored.arms == s.arms
