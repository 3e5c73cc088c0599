"""Interactions: the domain object, its wire form on catalog.interactions, and validation.

Every rejection names a reason from `REASONS`; the feedback service dead-letters the record unchanged
with it (docs/EVENTS.md, "Interactions"). The Kafka key is the unit key, or the recommendation id for
a list served without a unit key (`record_key`), so that a list and every outcome answering it land in
one partition, in order.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError

from vitrine.errors import InvalidEventError
from vitrine.serving.results import Task
from vitrine.v1 import feedback_pb2, recommender_pb2

SCHEMA_VERSION = 1

REASONS = (
    "undecodable",
    "unknown_schema_version",
    "unknown_type",
    "missing_event_id",
    "missing_key",
    "key_mismatch",
    "missing_product_id",
    "missing_recommendation_id",
    "bad_impression",
    "bad_value",
    "oversized_text",
    "control_character",
    "bad_event_time",
)


class InteractionType(enum.IntEnum):
    IMPRESSION = feedback_pb2.INTERACTION_TYPE_IMPRESSION
    CLICK = feedback_pb2.INTERACTION_TYPE_CLICK
    ADD_TO_CART = feedback_pb2.INTERACTION_TYPE_ADD_TO_CART
    PURCHASE = feedback_pb2.INTERACTION_TYPE_PURCHASE

    @property
    def label(self) -> str:
        return self.name.lower()


_TASK_TO_PB = {
    Task.SIMILAR: recommender_pb2.TASK_SIMILAR,
    Task.COMPLEMENTARY: recommender_pb2.TASK_COMPLEMENTARY,
    Task.INSPIRE: recommender_pb2.TASK_INSPIRE,
}
_PB_TO_TASK = {v: k for k, v in _TASK_TO_PB.items()}
_TYPES = frozenset(t.value for t in InteractionType)


@dataclass(frozen=True, slots=True)
class ShownList:
    """What one response showed (an impression's payload)."""

    product_ids: tuple[str, ...]
    experiment: str
    variant: str
    control_variant: str = ""
    model_version: str = ""
    task: Task | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    event_id: str
    unit_key: str
    type: InteractionType
    event_time: datetime
    product_id: str = ""
    recommendation_id: str = ""
    placement: str = ""
    value: float = 0.0
    currency: str = ""
    quantity: int = 0
    order_id: str = ""
    shown: ShownList | None = None  # impressions only

    @property
    def event_time_ms(self) -> int:
        return int(self.event_time.timestamp() * 1000)

    @property
    def key(self) -> str:
        return record_key(self.unit_key, self.recommendation_id)

    def to_proto(self) -> feedback_pb2.Interaction:
        pb = feedback_pb2.Interaction(
            schema_version=SCHEMA_VERSION,
            event_id=self.event_id,
            unit_key=self.unit_key,
            type=int(self.type),  # type: ignore[arg-type]
            product_id=self.product_id,
            recommendation_id=self.recommendation_id,
            placement=self.placement,
            value=self.value,
            currency=self.currency,
            quantity=self.quantity,
            order_id=self.order_id,
        )
        pb.event_time.FromDatetime(self.event_time)
        if self.shown is not None:
            s = self.shown
            pb.impression.CopyFrom(
                feedback_pb2.Impression(
                    product_ids=list(s.product_ids),
                    experiment=s.experiment,
                    variant=s.variant,
                    control_variant=s.control_variant,
                    model_version=s.model_version,
                    task=_TASK_TO_PB.get(s.task, recommender_pb2.TASK_UNSPECIFIED),  # type: ignore[arg-type]
                )
            )
        return pb

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString()


def impression_bytes(
    recommendation_id: str,
    unit_key: str,
    placement: str,
    time_ns: int,
    product_ids: list[str] | tuple[str, ...],
    experiment: str,
    variant: str,
    control_variant: str,
    model_version: str,
    task: Task,
) -> bytes:
    """An impression's wire form, built straight into the protobuf (the recorder's hot path; the same
    message `Interaction(...).to_bytes()` gives)."""
    pb = feedback_pb2.Interaction(
        schema_version=SCHEMA_VERSION,
        event_id=recommendation_id,
        unit_key=unit_key,
        type=feedback_pb2.INTERACTION_TYPE_IMPRESSION,
        recommendation_id=recommendation_id,
        placement=placement,
    )
    pb.event_time.seconds, pb.event_time.nanos = divmod(time_ns, 1_000_000_000)
    imp = pb.impression
    imp.product_ids.extend(product_ids)
    imp.experiment = experiment
    imp.variant = variant
    imp.control_variant = control_variant
    imp.model_version = model_version
    imp.task = _TASK_TO_PB.get(task, recommender_pb2.TASK_UNSPECIFIED)  # type: ignore[assignment]
    return pb.SerializeToString()


def record_key(unit_key: str, recommendation_id: str) -> str:
    """The Kafka key of an interaction: its unit key, else the recommendation id it answers."""
    return unit_key or recommendation_id


@dataclass(frozen=True)
class InteractionLimits:
    max_id_chars: int = 256  # event ids, unit keys, product ids, recommendation ids, placements, ...
    max_shown: int = 500  # the recommender's own limit on a list
    max_value: float = 1e9


def decode_interaction(
    value: bytes | None, key: bytes | None = None, limits: InteractionLimits | None = None
) -> Interaction:
    """Parse and validate one Kafka record; raises InvalidEventError(reason, detail)."""
    limits = limits or InteractionLimits()
    if value is None:
        raise InvalidEventError("undecodable", "null value on the interactions topic")
    try:
        pb = feedback_pb2.Interaction.FromString(value)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise InvalidEventError("undecodable", f"not a vitrine.v1.Interaction: {e}") from e
    if pb.schema_version != SCHEMA_VERSION:
        raise InvalidEventError(
            "unknown_schema_version",
            f"schema_version {pb.schema_version}, this consumer reads {SCHEMA_VERSION}",
        )
    if pb.type not in _TYPES:
        raise InvalidEventError("unknown_type", f"type {pb.type} is not one of {sorted(_TYPES)}")
    kind = InteractionType(pb.type)
    for name in (
        "event_id",
        "unit_key",
        "product_id",
        "recommendation_id",
        "placement",
        "order_id",
        "currency",
    ):
        if len(getattr(pb, name)) > limits.max_id_chars:
            raise InvalidEventError("oversized_text", f"{name} longer than {limits.max_id_chars} characters")
    for name in ("unit_key", "recommendation_id", "placement"):
        if _has_control(getattr(pb, name)):
            raise InvalidEventError("control_character", f"{name} contains a control character")
    if not pb.event_id:
        raise InvalidEventError("missing_event_id", "event_id is empty (it makes retries harmless)")
    expected = record_key(pb.unit_key, pb.recommendation_id)
    if not expected:
        raise InvalidEventError("missing_key", "unit_key and recommendation_id are both empty")
    if key is not None and key != expected.encode():
        raise InvalidEventError(
            "key_mismatch",
            f"record key {key[:64]!r} is not the unit key (or recommendation id) {expected[:64]!r}",
        )
    if not pb.HasField("event_time"):
        raise InvalidEventError("bad_event_time", "event_time is not set")
    try:
        event_time = pb.event_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as e:
        raise InvalidEventError("bad_event_time", f"event_time out of range: {e}") from e
    if not math.isfinite(pb.value) or not 0 <= pb.value <= limits.max_value:
        raise InvalidEventError("bad_value", f"value {pb.value!r} is not in [0, {limits.max_value:g}]")
    shown = None
    if kind is InteractionType.IMPRESSION:
        shown = _shown(pb, limits)
    else:
        if pb.HasField("impression"):
            raise InvalidEventError("bad_impression", f"a {kind.label} must not carry an impression")
        if not pb.product_id:
            raise InvalidEventError("missing_product_id", f"a {kind.label} needs the product_id")
    if kind is InteractionType.PURCHASE and pb.value > 0 and not pb.currency:
        raise InvalidEventError("bad_value", "a purchase value needs its currency")
    return Interaction(
        event_id=pb.event_id,
        unit_key=pb.unit_key,
        type=kind,
        event_time=event_time,
        product_id=pb.product_id,
        recommendation_id=pb.recommendation_id,
        placement=pb.placement,
        value=pb.value,
        currency=pb.currency,
        quantity=pb.quantity,
        order_id=pb.order_id,
        shown=shown,
    )


def _shown(pb: feedback_pb2.Interaction, limits: InteractionLimits) -> ShownList:
    if not pb.recommendation_id:
        raise InvalidEventError("missing_recommendation_id", "an impression needs its recommendation_id")
    if not pb.HasField("impression"):
        raise InvalidEventError("bad_impression", "an impression needs the impression field (the list shown)")
    imp = pb.impression
    if len(imp.product_ids) > limits.max_shown:
        raise InvalidEventError("bad_impression", f"more than {limits.max_shown} products shown")
    for name in ("experiment", "variant", "control_variant", "model_version"):
        if len(getattr(imp, name)) > limits.max_id_chars:
            raise InvalidEventError("oversized_text", f"impression.{name} longer than {limits.max_id_chars}")
    if _has_control(imp.experiment) or _has_control(imp.variant):
        raise InvalidEventError(
            "control_character", "impression.experiment or .variant has a control character"
        )
    if any(not p or len(p) > limits.max_id_chars for p in imp.product_ids):
        raise InvalidEventError("bad_impression", f"product ids must be 1..{limits.max_id_chars} characters")
    return ShownList(
        product_ids=tuple(imp.product_ids),
        experiment=imp.experiment,
        variant=imp.variant,
        control_variant=imp.control_variant,
        model_version=imp.model_version,
        task=_PB_TO_TASK.get(imp.task),
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    """Control characters (U+0000..U+001F, U+007F) in an id: the state store's keys are joined with one."""
    return _CONTROL.search(text) is not None
