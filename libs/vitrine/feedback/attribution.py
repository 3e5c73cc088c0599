"""Attribution: outcomes (clicks, add-to-carts, purchases) joined to the list they answer, per partition.

A pure state machine over the records of one partition of catalog.interactions, in offset order (no
Kafka here): the feedback worker feeds it, its changes go to the state changelog in the batch's
transaction, and replaying the same records from the same state gives the same result (time is event
time, never the wall clock), so a restart or an offline recount of the topic ends with the same counts.

- An impression opens a list: its unit, experiment, variant and placement, the products shown. Lists
  served without a unit key were not randomised (they always get the control) and are not counted.
- An outcome with a `recommendation_id` counts for that list if the list is open, the outcome's
  event time is within [-clock_skew, window] of the impression's, its product was in the list and its
  event id was not counted before. A click counts once per product of a list (CTR = distinct items
  clicked per list shown); every purchase counts, with its value.
- The watermark is the highest event time seen in the partition; a list closes (its state is dropped)
  once the watermark passes its impression time + window + lateness.

What each arm keeps are unit-level totals (`statistics.UnitOutcome`) and their sums (`ArmTotals`),
because the unit key, not the impression, is what the traffic split randomises.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from vitrine.feedback.interactions import Interaction, InteractionType
from vitrine.feedback.statistics import ArmTotals, UnitOutcome

ArmKey = tuple[str, str, str]  # experiment, variant, placement
UnitKey = tuple[str, str, str, str]  # experiment, variant, placement, unit key

# What happened to each interaction (the `outcome` label of vitrine_feedback_attribution_total).
COUNTED = "counted"  # an impression opened, or an outcome counted for its list
ORGANIC = "organic"  # no recommendation_id: training signal only
NOT_RANDOMISED = "not_randomised"  # an impression without a unit key
UNKNOWN_RECOMMENDATION = "unknown_recommendation"  # no open list with that id (never seen, or closed)
OUTSIDE_WINDOW = "outside_window"
NOT_IN_LIST = "not_in_list"
DUPLICATE = "duplicate"  # an event id (or a recommendation id) already counted
REPEAT_CLICK = "repeat_click"  # a second click on the same item of a list
LATE_IMPRESSION = "late_impression"  # its window had passed before it arrived


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    window_s: float = 3600.0
    clock_skew_s: float = 60.0
    lateness_s: float = 600.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.clock_skew_s < 0 or self.lateness_s < 0:
            raise ValueError("window_s > 0, clock_skew_s >= 0 and lateness_s >= 0 are required")

    @property
    def keep_ms(self) -> int:
        """How long after its impression a list stays open (in event time)."""
        return int((self.window_s + self.lateness_s) * 1000)


@dataclass(slots=True)
class OpenList:
    unit_key: str
    arm: ArmKey
    control_variant: str
    event_time_ms: int
    shown: tuple[str, ...]  # a list is short (<= 500, typically 8-20): a tuple scan beats a set's memory
    clicked: set[str] = field(default_factory=set)
    outcome_ids: set[str] = field(default_factory=set)


@dataclass
class Changes:
    """What a batch changed: written to the changelog (and the arms to the results) in its transaction."""

    lists: dict[str, OpenList | None] = field(default_factory=dict)  # None = closed
    units: set[UnitKey] = field(default_factory=set)
    arms: set[ArmKey] = field(default_factory=set)
    clock: bool = False


class PartitionState:
    """Attribution state of one partition: open lists, unit totals, arm sums and the watermark."""

    def __init__(self, config: AttributionConfig | None = None) -> None:
        self.config = config or AttributionConfig()
        self.lists: dict[str, OpenList] = {}
        self.units: dict[UnitKey, UnitOutcome] = {}
        self.arms: dict[ArmKey, ArmTotals] = {}
        self.controls: dict[ArmKey, str] = {}
        self.watermark_ms = 0
        self._expiry: list[tuple[int, str]] = []  # (close time, recommendation id), a min-heap
        self.changes = Changes()

    # -- processing -------------------------------------------------------------------------------

    def apply(self, interaction: Interaction) -> str:
        """Apply one validated interaction; returns what happened to it (the constants above)."""
        t = interaction.event_time_ms
        if t > self.watermark_ms:
            self.watermark_ms = t
            self.changes.clock = True
        if interaction.type is InteractionType.IMPRESSION:
            return self._open(interaction, t)
        if not interaction.recommendation_id:
            return ORGANIC
        opened = self.lists.get(interaction.recommendation_id)
        if opened is None:
            return UNKNOWN_RECOMMENDATION
        if interaction.event_id in opened.outcome_ids:
            return DUPLICATE
        delay = t - opened.event_time_ms
        if delay < -self.config.clock_skew_s * 1000 or delay > self.config.window_s * 1000:
            return OUTSIDE_WINDOW
        if interaction.product_id not in opened.shown:
            return NOT_IN_LIST
        unit = self._unit(opened)
        if interaction.type is InteractionType.CLICK:
            if interaction.product_id in opened.clicked:
                opened.outcome_ids.add(interaction.event_id)
                self.changes.lists[interaction.recommendation_id] = opened
                return REPEAT_CLICK
            opened.clicked.add(interaction.product_id)
            new = UnitOutcome(
                unit.impressions, unit.clicks + 1, unit.add_to_carts, unit.conversions, unit.revenue
            )
        elif interaction.type is InteractionType.ADD_TO_CART:
            new = UnitOutcome(
                unit.impressions, unit.clicks, unit.add_to_carts + 1, unit.conversions, unit.revenue
            )
        else:
            new = UnitOutcome(
                unit.impressions,
                unit.clicks,
                unit.add_to_carts,
                unit.conversions + 1,
                unit.revenue + interaction.value,
            )
        opened.outcome_ids.add(interaction.event_id)
        self.changes.lists[interaction.recommendation_id] = opened
        self._set_unit(opened.arm, opened.unit_key, opened.control_variant, new)
        return COUNTED

    def _open(self, interaction: Interaction, t: int) -> str:
        rec_id = interaction.recommendation_id
        shown = interaction.shown
        if rec_id in self.lists:
            return DUPLICATE
        if not interaction.unit_key or shown is None:
            return NOT_RANDOMISED
        close_at = t + self.config.keep_ms
        if close_at < self.watermark_ms:
            return LATE_IMPRESSION
        arm = (shown.experiment, shown.variant, interaction.placement)
        opened = OpenList(
            interaction.unit_key,
            arm,
            shown.control_variant,
            t,
            shown.product_ids,
        )
        self.lists[rec_id] = opened
        heapq.heappush(self._expiry, (close_at, rec_id))
        self.changes.lists[rec_id] = opened
        unit = self._unit(opened)
        new = UnitOutcome(
            unit.impressions + 1, unit.clicks, unit.add_to_carts, unit.conversions, unit.revenue
        )
        self._set_unit(arm, interaction.unit_key, shown.control_variant, new)
        return COUNTED

    def _unit(self, opened: OpenList) -> UnitOutcome:
        return self.units.get((*opened.arm, opened.unit_key)) or UnitOutcome()

    def _set_unit(self, arm: ArmKey, unit_key: str, control: str, new: UnitOutcome) -> None:
        key = (*arm, unit_key)
        old = self.units.get(key)
        self.units[key] = new
        totals = self.arms.get(arm)
        if totals is None:
            totals = self.arms[arm] = ArmTotals()
        totals.replace_unit(old, new)
        if control:
            self.controls[arm] = control
        self.changes.units.add(key)
        self.changes.arms.add(arm)

    def close_expired(self) -> int:
        """Close the lists whose window (+ lateness) the watermark has passed; returns how many."""
        closed = 0
        while self._expiry and self._expiry[0][0] < self.watermark_ms:
            _, rec_id = heapq.heappop(self._expiry)
            if self.lists.pop(rec_id, None) is not None:
                self.changes.lists[rec_id] = None
                closed += 1
        return closed

    def take_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        return changes

    # -- restore from the changelog ------------------------------------------------------------------

    def restore_list(self, rec_id: str, opened: OpenList | None) -> None:
        if opened is None:
            self.lists.pop(rec_id, None)
            return
        self.lists[rec_id] = opened

    def restore_unit(self, key: UnitKey, unit: UnitOutcome, control: str) -> None:
        arm: ArmKey = (key[0], key[1], key[2])
        old = self.units.get(key)
        self.units[key] = unit
        totals = self.arms.get(arm)
        if totals is None:
            totals = self.arms[arm] = ArmTotals()
        totals.replace_unit(old, unit)
        if control:
            self.controls[arm] = control

    def restore_clock(self, watermark_ms: int) -> None:
        self.watermark_ms = max(self.watermark_ms, watermark_ms)

    def restored(self) -> None:
        """After the changelog was read: rebuild the expiry heap; nothing restored is a change."""
        keep = self.config.keep_ms
        self._expiry = [(o.event_time_ms + keep, rec_id) for rec_id, o in self.lists.items()]
        heapq.heapify(self._expiry)
        self.changes = Changes()
