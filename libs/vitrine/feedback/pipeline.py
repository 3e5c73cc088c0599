"""The feedback service's per-batch logic: validate, dead-letter the bad, attribute, write the changes.

Pure of Kafka consumption: it receives records of assigned partitions, updates each partition's
`PartitionState`, and sends the state changes (changelog, to the same partition number), the arm
results that are due and the dead letters through one producer, so the caller can commit them and the
batch's offsets in one transaction. Counts are returned, to be recorded once the transaction commits.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vitrine.errors import InvalidEventError
from vitrine.feedback.attribution import ArmKey, AttributionConfig, PartitionState
from vitrine.feedback.changelog import arm_record, changelog_records
from vitrine.feedback.interactions import InteractionLimits, decode_interaction
from vitrine.stream.dead_letters import DeadLetterSink
from vitrine.stream.records import SourceRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackTopics:
    interactions: str = "catalog.interactions"
    dead_letters: str = "catalog.interactions.dlq"
    changelog: str = "vitrine-feedback-state"
    results: str = "catalog.experiments"


@dataclass
class FeedbackOutcome:
    consumed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    attribution: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    changelog_records: int = 0
    result_records: int = 0
    closed: int = 0


class Sender(Protocol):
    """What the pipeline writes through (a TransactionalProducer in the service)."""

    def send(self, topic: str, **kwargs: Any) -> Any: ...


class FeedbackPipeline:
    def __init__(
        self,
        producer: Sender,
        dead_letters: DeadLetterSink,
        topics: FeedbackTopics,
        config: AttributionConfig | None = None,
        limits: InteractionLimits | None = None,
        results_interval_s: float = 10.0,
        max_future_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.dead_letters = dead_letters
        self.topics = topics
        self.config = config or AttributionConfig()
        self.limits = limits or InteractionLimits()
        self.results_interval_s = results_interval_s
        self.max_future_ms = int(max_future_s * 1000)
        self.clock = clock
        self.states: dict[int, PartitionState] = {}
        self._pending_arms: dict[int, set[ArmKey]] = {}
        self._last_results: dict[int, float] = {}

    # -- partitions ----------------------------------------------------------------------------------

    def new_state(self) -> PartitionState:
        return PartitionState(self.config)

    def adopt(self, partition: int, state: PartitionState) -> None:
        """Take over a partition with its restored state; every arm's result is due at once."""
        self.states[partition] = state
        self._pending_arms[partition] = set(state.arms)
        self._last_results[partition] = float("-inf")

    def drop(self, partition: int) -> None:
        self.states.pop(partition, None)
        self._pending_arms.pop(partition, None)
        self._last_results.pop(partition, None)

    # -- a batch -------------------------------------------------------------------------------------

    def process(self, records: Sequence[SourceRecord], caught_up: Callable[[int], bool]) -> FeedbackOutcome:
        """Apply a batch and send everything it changed; `caught_up(partition)` says whether the batch
        reached the partition's log end (then the arm results are written now, not at the next interval)."""
        out = FeedbackOutcome(consumed=len(records))
        touched: set[int] = set()
        for record in records:
            state = self.states[record.partition]
            try:
                interaction = decode_interaction(record.value, record.key, self.limits)
                if interaction.event_time_ms > record.timestamp_ms + self.max_future_ms:
                    raise InvalidEventError(
                        "bad_event_time",
                        f"event_time is {(interaction.event_time_ms - record.timestamp_ms) / 1000:.0f}s after "
                        "the record's timestamp (a wrong clock would close every open list)",
                    )
            except InvalidEventError as e:
                self.dead_letters.send(record, e.reason, e.detail)
                out.dead_lettered[e.reason] += 1
                continue
            try:
                what = state.apply(interaction)
            except Exception as e:  # a bug must not stall the partition: the record is set aside
                log.exception(
                    "attribution failed on %s[%d]@%d", record.topic, record.partition, record.offset
                )
                self.dead_letters.send(record, "processing_failed", f"{type(e).__name__}: {e}")
                out.dead_lettered["processing_failed"] += 1
                continue
            out.by_type[interaction.type.label] += 1
            out.attribution[what] += 1
            touched.add(record.partition)
        now = self.clock()
        for partition in sorted(touched):
            state = self.states[partition]
            out.closed += state.close_expired()
            changes = state.take_changes()
            for key, value in changelog_records(state, changes):
                self.producer.send(self.topics.changelog, key=key, value=value, partition=partition)
                out.changelog_records += 1
            pending = self._pending_arms.setdefault(partition, set())
            pending |= changes.arms
        for partition, pending in self._pending_arms.items():
            if not pending:
                continue
            due = now - self._last_results.get(partition, float("-inf")) >= self.results_interval_s
            if not (due or caught_up(partition)):
                continue
            state = self.states[partition]
            for arm in sorted(pending):
                key, value = arm_record(
                    arm, state.controls.get(arm, ""), partition, state.arms[arm], state.watermark_ms
                )
                self.producer.send(self.topics.results, key=key, value=value)
                out.result_records += 1
            pending.clear()
            self._last_results[partition] = now
        self.dead_letters.flush()
        return out
