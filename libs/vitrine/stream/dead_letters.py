"""Dead letters: a bad record goes to catalog.products.dlq unchanged, with why and where in headers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaProducer

from vitrine.stream.records import SourceRecord
from vitrine.stream.transactions import TransactionalProducer

log = logging.getLogger(__name__)

# Header names, part of the producer contract (docs/EVENTS.md).
H_REASON = "vitrine.dlq.reason"
H_DETAIL = "vitrine.dlq.detail"
H_TOPIC = "vitrine.dlq.source.topic"
H_PARTITION = "vitrine.dlq.source.partition"
H_OFFSET = "vitrine.dlq.source.offset"
H_TIMESTAMP = "vitrine.dlq.source.timestamp"
H_GROUP = "vitrine.dlq.group"  # the consumer group (encoder) that wrote the dead letter
H_MODEL_VERSION = "vitrine.dlq.model_version"  # the model that encoder serves
MAX_DETAIL_BYTES = 1_000
# reasons that depend on the model (another model may encode the event fine); every other reason is
# the event breaking the contract, the same for every encoder group
MODEL_REASONS = frozenset({"encode_failed"})


@dataclass(frozen=True, slots=True)
class DeadLetterWriter:
    """Who writes: every dead letter names its consumer group and model version in its headers.

    `write_invalid=False` (an encoder that is not the live one, e.g. a backfill or the complementary
    model's encoder): leave the events that break the contract to the live encoder, which reads the
    same topic, and write only the model's own failures; one bad event then gives one dead letter
    however many models are encoded (they are still counted in the dead_lettered metric)."""

    group_id: str = ""
    model_version: str = ""
    write_invalid: bool = True

    def headers(self) -> list[tuple[str, bytes]]:
        return [(H_GROUP, self.group_id.encode()), (H_MODEL_VERSION, self.model_version.encode())]

    def writes(self, reason: str) -> bool:
        return self.write_invalid or reason in MODEL_REASONS


class DeadLetterSink(Protocol):
    def send(self, record: SourceRecord, reason: str, detail: str) -> None: ...

    def flush(self) -> None:
        """Block until every dead letter sent so far is acknowledged."""
        ...


class KafkaDeadLetters:
    """With a `TransactionalProducer` (the encoder's exactly-once mode, same producer as the vector
    sink) a batch's dead letters are part of the batch's transaction: they become visible to
    `read_committed` readers with the batch's vectors and offsets, or not at all."""

    def __init__(
        self,
        producer: KafkaProducer | TransactionalProducer,
        topic: str,
        writer: DeadLetterWriter | None = None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self.writer = writer or DeadLetterWriter()
        self._pending: list = []
        if isinstance(producer, TransactionalProducer):
            producer.register(self)

    def transaction_committed(self) -> None:
        self._pending.clear()

    def transaction_aborted(self) -> None:
        self._pending.clear()  # void: the batch is retried or replayed, and dead-lettered again

    def send(self, record: SourceRecord, reason: str, detail: str) -> None:
        if not self.writer.writes(reason):
            log.debug(
                "%s[%d]@%d: %s, left to the live encoder",
                record.topic,
                record.partition,
                record.offset,
                reason,
            )
            return
        headers = [
            *record.headers,
            (H_REASON, reason.encode()),
            (H_DETAIL, detail.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]),
            (H_TOPIC, record.topic.encode()),
            (H_PARTITION, str(record.partition).encode()),
            (H_OFFSET, str(record.offset).encode()),
            (H_TIMESTAMP, str(record.timestamp_ms).encode()),
            *self.writer.headers(),
        ]
        # Original bytes, original key: the record can be fixed and replayed as it was.
        self._pending.append(
            self._producer.send(self.topic, key=record.key, value=record.value, headers=headers)
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s (%s)",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail[:200],
        )

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []  # a failed flush is retried with the whole batch
        self._producer.flush()
        for future in pending:
            future.get(timeout=30)  # raises if the broker refused it: the batch is then retried
