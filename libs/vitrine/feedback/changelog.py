"""The feedback service's records: its state changelog and the arm results, as Kafka keys and values.

Changelog (compacted, one partition per partition of catalog.interactions, written to the same
partition number): `l<US>rec id` = an open list (tombstone when it closes), `u<US>experiment<US>variant
<US>placement<US>unit key` = a unit's totals, `c` = the partition's watermark. Reading a partition's
changelog from the start gives exactly the state its committed offsets left.

Results (`ArmStatistics`, topic catalog.experiments): key `experiment<US>variant<US>placement<US>
partition`; each record is cumulative, so the latest per key is the arm's state in that partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from vitrine.feedback.attribution import ArmKey, Changes, OpenList, PartitionState, UnitKey
from vitrine.feedback.statistics import ArmTotals, UnitOutcome
from vitrine.v1 import feedback_pb2

SEP = "\x1f"  # the ASCII unit separator: never in an id a producer can send (validated as text)
LIST, UNIT, CLOCK = "l", "u", "c"

KeyValue = tuple[bytes, bytes | None]


def changelog_records(state: PartitionState, changes: Changes) -> Iterator[KeyValue]:
    for rec_id, opened in changes.lists.items():
        key = f"{LIST}{SEP}{rec_id}".encode()
        yield key, (None if opened is None else _list_record(opened).SerializeToString())
    for unit_key in changes.units:
        unit = state.units[unit_key]
        control = state.controls.get((unit_key[0], unit_key[1], unit_key[2]), "")
        record = feedback_pb2.FeedbackStateRecord(
            unit=feedback_pb2.UnitTotals(
                impressions=unit.impressions,
                clicks=unit.clicks,
                add_to_carts=unit.add_to_carts,
                conversions=unit.conversions,
                revenue=unit.revenue,
                control_variant=control,
            )
        )
        yield SEP.join((UNIT, *unit_key)).encode(), record.SerializeToString()
    if changes.clock:
        clock = feedback_pb2.FeedbackStateRecord(
            clock=feedback_pb2.PartitionClock(watermark_ms=state.watermark_ms)
        )
        yield CLOCK.encode(), clock.SerializeToString()


def _list_record(opened: OpenList) -> feedback_pb2.FeedbackStateRecord:
    experiment, variant, placement = opened.arm
    return feedback_pb2.FeedbackStateRecord(
        impression=feedback_pb2.OpenImpression(
            unit_key=opened.unit_key,
            experiment=experiment,
            variant=variant,
            control_variant=opened.control_variant,
            placement=placement,
            event_time_ms=opened.event_time_ms,
            product_ids=list(opened.shown),
            clicked=sorted(opened.clicked),
            outcome_event_ids=sorted(opened.outcome_ids),
        )
    )


def restore_record(state: PartitionState, key: bytes | None, value: bytes | None) -> None:
    """Apply one changelog record to a state being restored (call `state.restored()` at the end)."""
    if key is None:
        return
    parts = key.decode().split(SEP)
    kind = parts[0]
    if kind == LIST and len(parts) == 2:
        if value is None:
            state.restore_list(parts[1], None)
            return
        imp = feedback_pb2.FeedbackStateRecord.FromString(value).impression
        arm: ArmKey = (imp.experiment, imp.variant, imp.placement)
        state.restore_list(
            parts[1],
            OpenList(
                imp.unit_key,
                arm,
                imp.control_variant,
                imp.event_time_ms,
                tuple(imp.product_ids),
                set(imp.clicked),
                set(imp.outcome_event_ids),
            ),
        )
    elif kind == UNIT and len(parts) == 5 and value is not None:
        u = feedback_pb2.FeedbackStateRecord.FromString(value).unit
        unit_key: UnitKey = (parts[1], parts[2], parts[3], parts[4])
        state.restore_unit(
            unit_key,
            UnitOutcome(u.impressions, u.clicks, u.add_to_carts, u.conversions, u.revenue),
            u.control_variant,
        )
    elif kind == CLOCK and value is not None:
        state.restore_clock(feedback_pb2.FeedbackStateRecord.FromString(value).clock.watermark_ms)


# -- results ------------------------------------------------------------------------------------------


def arm_record(arm: ArmKey, control: str, partition: int, totals: ArmTotals, as_of_ms: int) -> KeyValue:
    experiment, variant, placement = arm
    pb = feedback_pb2.ArmStatistics(
        experiment=experiment,
        variant=variant,
        placement=placement,
        control_variant=control,
        partition=partition,
        units=totals.units,
        impressions=totals.impressions,
        clicks=totals.clicks,
        add_to_carts=totals.add_to_carts,
        conversions=totals.conversions,
        revenue=totals.revenue,
        impressions_sq=totals.impressions_sq,
        clicks_sq=totals.clicks_sq,
        impressions_clicks=totals.impressions_clicks,
        conversions_sq=totals.conversions_sq,
        impressions_conversions=totals.impressions_conversions,
        revenue_sq=totals.revenue_sq,
        impressions_revenue=totals.impressions_revenue,
    )
    pb.as_of.FromMilliseconds(as_of_ms)
    key = SEP.join((experiment, variant, placement, str(partition))).encode()
    return key, pb.SerializeToString()


def decode_arm(value: bytes) -> tuple[ArmKey, str, int, datetime, ArmTotals]:
    pb = feedback_pb2.ArmStatistics.FromString(value)
    totals = ArmTotals(
        units=pb.units,
        impressions=pb.impressions,
        clicks=pb.clicks,
        add_to_carts=pb.add_to_carts,
        conversions=pb.conversions,
        revenue=pb.revenue,
        impressions_sq=pb.impressions_sq,
        clicks_sq=pb.clicks_sq,
        impressions_clicks=pb.impressions_clicks,
        conversions_sq=pb.conversions_sq,
        impressions_conversions=pb.impressions_conversions,
        revenue_sq=pb.revenue_sq,
        impressions_revenue=pb.impressions_revenue,
    )
    as_of = pb.as_of.ToDatetime(tzinfo=UTC)
    return (pb.experiment, pb.variant, pb.placement), pb.control_variant, pb.partition, as_of, totals
