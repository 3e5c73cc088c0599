"""How the encoder cuts the stream into micro-batches: by count and by time.

Every batch is one Kafka transaction in exactly-once mode (vectors, dead letters and offsets), whose
fixed cost is a handful of round trips to the transaction and group coordinators plus a commit
marker per partition written (AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn). Two
bounds, whichever comes first:

- `max_records` (default 1024): a busy or backlogged partition, whose poll() returns records as
  fast as they are taken, fills batches to this size, so the fixed cost is shared by ~1k records
  (at 256 it was 17 % of the encoder's time; issue 18).
- `max_wait_ms` (default 20): a quiet stream never waits longer than this after a batch's first
  record arrived, so an idle partition still commits within the freshness budget (p99 ≤ 250 ms
  from event to searchable). Waiting longer would not make batches much larger at moderate load:
  records arriving while a batch is encoded and committed are already waiting for the next one,
  so batches grow with the load by themselves.

Pure configuration (no Kafka, no numpy): the service settings read its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPolicy:
    """Flush a micro-batch when it has `max_records` or its first record waited `max_wait_ms`."""

    max_records: int = 1024
    max_wait_ms: int = 20
    poll_timeout_ms: int = 200
    retry_backoff_ms: int = 200
    max_retry_backoff_ms: int = 10_000
    # A batch that failed this many times in a row for a transient reason is retried record by
    # record: one record can fail in a way that looks transient. A record that fails for what it
    # holds is dead-lettered at once; one that fails transiently alone is waited out (the broker or
    # the index is down: nothing to dead-letter it to, and every record would fail alike).
    max_batch_attempts: int = 4

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_wait_ms < 0 or self.poll_timeout_ms < 1:
            raise ValueError("max_records >= 1, max_wait_ms >= 0 and poll_timeout_ms >= 1 are required")
        if self.max_batch_attempts < 1:
            raise ValueError("max_batch_attempts >= 1 is required")
