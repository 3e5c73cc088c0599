"""Reading and replaying the dead-letter topic (`vitrine dlq read|replay`).

A dead letter is the rejected record unchanged (key, value, the producer's headers) plus the
`vitrine.dlq.*` headers saying why, where it came from and which encoder wrote it
(`vitrine.stream.dead_letters`). Reading takes a snapshot: every committed record up to the end the
topic had when reading started (the encoder writes dead letters in its transactions). Replaying sends
the selected records back to where they came from as they were (same key, value and headers, plus
`vitrine.dlq.replayed_from`), so the encoder sees them as new events: one that still breaks the
contract is dead-lettered again, and one older than what is indexed is dropped as stale.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka.structs import TopicPartition

from vitrine.errors import ConfigError
from vitrine.stream.dead_letters import (
    H_DETAIL,
    H_GROUP,
    H_MODEL_VERSION,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_TIMESTAMP,
    H_TOPIC,
)
from vitrine.stream.kafka import KafkaSettings, make_consumer, make_producer

DLQ_HEADER_PREFIX = "vitrine.dlq."
H_REPLAYED_FROM = "vitrine.replayed_from"  # dead-letter topic, partition and offset a replay came from


def _text(value: bytes | None) -> str:
    if value is None:
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return repr(value)[2:-1]  # escaped, printable


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return _text(value)
        return ""

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.header(H_REASON) or "?"

    @property
    def group(self) -> str:
        return self.header(H_GROUP)

    @property
    def source_topic(self) -> str:
        return self.header(H_TOPIC)

    @property
    def source(self) -> str:
        topic = self.source_topic
        return f"{topic}[{self.header(H_PARTITION)}]@{self.header(H_OFFSET)}" if topic else ""

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had before it was dead-lettered."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "time": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(timespec="seconds"),
            "key": _text(self.key),
            "reason": self.reason,
            "detail": self.header(H_DETAIL),
            "group": self.group,
            "model_version": self.header(H_MODEL_VERSION),
            "source": {
                "topic": self.source_topic,
                "partition": self.header(H_PARTITION),
                "offset": self.header(H_OFFSET),
                "timestamp_ms": self.header(H_TIMESTAMP),
            },
            "value_bytes": None if self.value is None else len(self.value),
            "headers": {k: _text(v) for k, v in self.original_headers()},
        }


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters: every given criterion must match (an empty one matches everything)."""

    reasons: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    positions: frozenset[str] = frozenset()  # "partition:offset" of the dead letter

    @property
    def is_everything(self) -> bool:
        return not (self.reasons or self.groups or self.keys or self.positions)

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.groups or letter.group in self.groups)
            and (not self.keys or _text(letter.key) in self.keys)
            and (not self.positions or letter.position in self.positions)
        )


def read_dead_letters(
    settings: KafkaSettings,
    topic: str,
    selection: Selection | None = None,
    limit: int | None = None,
    timeout_s: float = 30.0,
) -> Iterator[DeadLetter]:
    """The committed dead letters up to the topic's end when called, oldest first per partition."""
    selection = selection or Selection()
    consumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            raise ConfigError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)  # read_committed: the last stable offsets
        deadline = time.monotonic() + timeout_s
        found = 0
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise ConfigError(f"reading {topic} did not reach its end within {timeout_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    letter = DeadLetter(
                        tp.topic,
                        tp.partition,
                        r.offset,
                        r.timestamp,
                        r.key,
                        r.value,
                        tuple((k, v or b"") for k, v in (r.headers or [])),
                    )
                    if selection.matches(letter):
                        yield letter
                        found += 1
                        if limit is not None and found >= limit:
                            return
    finally:
        consumer.close()


@dataclass(slots=True)
class ReplayReport:
    sent: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)


def replay(
    settings: KafkaSettings, letters: Iterable[DeadLetter], to_topic: str | None = None
) -> ReplayReport:
    """Send `letters` back to their source topic (or `to_topic`) unchanged; waits for every ack."""
    report = ReplayReport()
    producer = make_producer(settings)
    try:
        futures = []
        for letter in letters:
            topic = to_topic or letter.source_topic
            if not topic:
                raise ConfigError(
                    f"dead letter {letter.position} names no source topic ({H_TOPIC}); pass --to TOPIC"
                )
            headers = [
                *letter.original_headers(),
                (H_REPLAYED_FROM, f"{letter.topic}:{letter.position}".encode()),
            ]
            futures.append(producer.send(topic, key=letter.key, value=letter.value, headers=headers))
            report.by_reason[letter.reason] += 1
            report.by_topic[topic] += 1
        producer.flush()
        for future in futures:
            future.get(timeout=30)
            report.sent += 1
    finally:
        producer.close()
    return report
