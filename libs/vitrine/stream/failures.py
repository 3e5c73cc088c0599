"""What kind of failure an exception is: the infrastructure briefly unavailable, or this record.

Every failure of the encoder's batch (and of the recommender's vector feed) is one of two kinds:

- `TRANSIENT`: the broker or the index is unavailable (connection refused, a timeout, a leader
  moving, Qdrant answering 5xx). Retrying is right: the record is fine, the world is not. Retried
  with capped backoff; while it lasts the partition's progress gauge stops and the stall alert fires.
- `RECORD`: this record can never succeed as it is (too large for the broker, a header kafka-python
  cannot encode, a value an engine refuses with a 4xx, a bug that one record triggers). Retrying it
  would stall its partition forever (a poison pill): it is dead-lettered with its reason and the
  stream goes on.

Authorization and configuration errors are infrastructure too (`TRANSIENT`): dead-lettering records
because a permission is missing would empty the stream into the dead-letter topic; the stall alert
tells an operator instead.
"""

from __future__ import annotations

import enum

from kafka import errors as kafka_errors

from vitrine.errors import IndexBackendError, InvalidEventError


class FailureKind(enum.Enum):
    TRANSIENT = "transient"
    RECORD = "record"


# Kafka errors that are about one record, whatever the broker's state (kafka-python 3.0.12 names).
_RECORD_KAFKA_ERRORS: tuple[type[BaseException], ...] = tuple(
    e
    for e in (
        getattr(kafka_errors, name, None)
        for name in (
            "MessageSizeTooLargeError",
            "RecordTooLargeError",
            "RecordListTooLargeError",
            "InvalidRecordError",
            "CorruptRecordError",
            "UnsupportedForMessageFormatError",
            "InvalidTimestampError",
            "UnsupportedCodecError",
        )
    )
    if isinstance(e, type)
)


def classify(error: BaseException) -> FailureKind:
    """TRANSIENT (wait it out) or RECORD (dead-letter the record and go on)."""
    if isinstance(error, InvalidEventError):
        return FailureKind.RECORD
    if isinstance(error, IndexBackendError):
        return FailureKind.TRANSIENT if error.retriable else FailureKind.RECORD
    if isinstance(error, _RECORD_KAFKA_ERRORS):
        return FailureKind.RECORD
    if isinstance(error, kafka_errors.KafkaError | TimeoutError | ConnectionError | OSError):
        return FailureKind.TRANSIENT
    # TypeError, ValueError, OverflowError, UnicodeError...: raised by what one record holds
    return FailureKind.RECORD


# What a loop that retries whole batches waits out (the feedback worker: its batch is one transaction
# over state it restores, and a bad interaction is dead-lettered by its pipeline before any write):
# every Kafka or index error, a timeout, a lost connection. `classify` splits these further where
# one record can be dead-lettered on its own (the encoder's batch).
BATCH_RETRIED: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaError,
    IndexBackendError,
    TimeoutError,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    return classify(error) is FailureKind.TRANSIENT


def describe(error: BaseException, limit: int = 500) -> str:
    """`Type: message`, bounded (a dead letter's detail header, a log line)."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
