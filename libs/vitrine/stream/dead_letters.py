"""Dead letters: a bad record goes to catalog.products.dlq unchanged, with why and where in headers.

A record that cannot be written as it is (larger than the producer's or the broker's message limit,
a header value kafka-python cannot send such as a null one, a header key that is not a string) is
written as a bounded *envelope* instead: the reason and where it came from as usual, plus
`vitrine.dlq.envelope` (why it is an envelope), the original sizes and header names, the first
`key_prefix_bytes` of the key and the first `value_prefix_bytes` of the value. So no record, of any
size or header shape, can stop its partition by failing to be dead-lettered (docs/EVENTS.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer

from vitrine.stream.failures import FailureKind, classify, describe
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
H_ENVELOPE = "vitrine.dlq.envelope"  # set only on envelopes: why the original could not be written
H_KEY_BYTES = "vitrine.dlq.original.key_bytes"
H_VALUE_BYTES = "vitrine.dlq.original.value_bytes"
H_HEADERS = "vitrine.dlq.original.headers"  # JSON: [[name, value bytes or null], ...]
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


# envelope reasons (the H_ENVELOPE header and the metric's `why` label)
TOO_LARGE = "too_large"
UNENCODABLE_HEADERS = "unencodable_headers"
REJECTED = "rejected"


@dataclass(frozen=True)
class DeadLetterLimits:
    """`max_record_bytes`: a dead letter above this (key + value + headers) is written as an envelope.
    Below both kafka-python's `max_request_size` (1 MiB) and a broker's default `message.max.bytes`
    (1 MiB + 12 bytes); a topic configured lower makes the broker refuse it, and then it is
    written as an envelope too."""

    max_record_bytes: int = 1_000_000
    key_prefix_bytes: int = 1_024
    value_prefix_bytes: int = 64 * 1024
    max_original_headers: int = 50

    def __post_init__(self) -> None:
        if self.key_prefix_bytes + self.value_prefix_bytes + 16_384 > self.max_record_bytes:
            raise ValueError("the envelope's prefixes must leave room under max_record_bytes")


class DeadLetterSink(Protocol):
    def send(self, record: SourceRecord, reason: str, detail: str) -> None: ...

    def flush(self) -> None:
        """Block until every dead letter sent so far is acknowledged."""
        ...


class EnvelopeCounter(Protocol):
    def labels(self, *values: str) -> Any: ...


class KafkaDeadLetters:
    """With a `TransactionalProducer` (the encoder's exactly-once mode, same producer as the vector
    sink) a batch's dead letters are part of the batch's transaction: they become visible to
    `read_committed` readers with the batch's vectors and offsets, or not at all.

    A dead letter the broker refuses for what it is (too large for the topic) is remembered: plain
    writes resend it as an envelope at once; in a transaction (which the refusal made abortable) the
    batch is retried and writes the envelope then."""

    def __init__(
        self,
        producer: KafkaProducer | TransactionalProducer,
        topic: str,
        writer: DeadLetterWriter | None = None,
        limits: DeadLetterLimits | None = None,
        envelopes: EnvelopeCounter | None = None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self.writer = writer or DeadLetterWriter()
        self.limits = limits or DeadLetterLimits()
        self._envelopes = envelopes  # vitrine_encoder_dead_letter_envelopes_total{why}
        self._pending: list[tuple[SourceRecord, str, str, Any]] = []
        self._refused: dict[tuple[str, int, int], str] = {}  # source position -> the broker's refusal
        self.transactional = isinstance(producer, TransactionalProducer)
        if isinstance(producer, TransactionalProducer):
            producer.register(self)

    def transaction_committed(self) -> None:
        self._pending.clear()
        self._refused.clear()  # what was refused is now written, as an envelope

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
        why = self._envelope_needed(record)
        if why is None:
            headers = [*record.headers, *self._source_headers(record, reason, detail)]
            # Original bytes, original key: the record can be fixed and replayed as it was.
            try:
                future = self._producer.send(self.topic, key=record.key, value=record.value, headers=headers)
            except Exception as e:  # refused before it left (a size or type check of kafka-python)
                if classify(e) is not FailureKind.RECORD:
                    raise
                why = f"{REJECTED}: {describe(e, 200)}"
            else:
                self._pending.append((record, reason, detail, future))
        if why is not None:
            self._send_envelope(record, reason, detail, why)
        log.warning(
            "dead-lettered %s[%d]@%d: %s (%s)%s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail[:200],
            f" as an envelope ({why})" if why else "",
        )

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []  # a failed flush is retried with the whole batch
        self._producer.flush()
        failure: BaseException | None = None
        for record, reason, detail, future in pending:
            try:
                future.get(timeout=30)
            except Exception as e:
                if classify(e) is not FailureKind.RECORD:
                    raise  # the broker is unavailable: the batch is retried
                self._refused[_position(record)] = f"{REJECTED}: {describe(e, 200)}"
                if self.transactional:
                    failure = failure or e  # the transaction is abortable now: retry the batch
                else:
                    self._send_envelope(record, reason, detail, self._refused.pop(_position(record)))
        if failure is not None:
            raise failure
        if not self.transactional and self._pending:
            self.flush()  # the envelopes just sent

    # -- envelopes --------------------------------------------------------------------------------

    def _envelope_needed(self, record: SourceRecord) -> str | None:
        refused = self._refused.get(_position(record))
        if refused is not None:
            return refused
        if not all(isinstance(k, str) and isinstance(v, bytes | bytearray) for k, v in record.headers):
            return UNENCODABLE_HEADERS
        size = len(record.key or b"") + len(record.value or b"")
        size += sum(len(k.encode("utf-8", "replace")) + len(v) for k, v in record.headers)
        if size + 2_048 > self.limits.max_record_bytes:  # + our own headers
            return TOO_LARGE
        return None

    def _send_envelope(self, record: SourceRecord, reason: str, detail: str, why: str) -> None:
        limits = self.limits
        key = bytes(record.key[: limits.key_prefix_bytes]) if record.key is not None else None
        value = bytes(record.value[: limits.value_prefix_bytes]) if record.value is not None else None
        originals = [
            [_text(k), len(v) if isinstance(v, bytes | bytearray) else None]
            for k, v in record.headers[: limits.max_original_headers]
        ]
        headers = [
            *self._source_headers(record, reason, detail),
            (H_ENVELOPE, why.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]),
            (H_KEY_BYTES, str(len(record.key) if record.key is not None else -1).encode()),
            (H_VALUE_BYTES, str(len(record.value) if record.value is not None else -1).encode()),
            (H_HEADERS, json.dumps(originals).encode()[:8_192]),
        ]
        if key is None and value is None:
            value = b""  # kafka-python needs one of them
        future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        self._pending.append((record, reason, detail, future))
        if self._envelopes is not None:
            self._envelopes.labels(why.split(":")[0]).inc()

    def _source_headers(self, record: SourceRecord, reason: str, detail: str) -> list[tuple[str, bytes]]:
        return [
            (H_REASON, reason.encode()),
            (H_DETAIL, detail.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]),
            (H_TOPIC, record.topic.encode()),
            (H_PARTITION, str(record.partition).encode()),
            (H_OFFSET, str(record.offset).encode()),
            (H_TIMESTAMP, str(record.timestamp_ms).encode()),
            *self.writer.headers(),
        ]


def _position(record: SourceRecord) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def _text(key: object) -> str:
    if isinstance(key, str):
        return key[:200]
    if isinstance(key, bytes | bytearray):
        return bytes(key[:200]).decode("utf-8", "replace")
    return repr(key)[:200]
