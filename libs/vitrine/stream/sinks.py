"""Where the encoder writes vectors: the compacted catalog.vectors topic (embedded mode) or an index
directly through the index port (server mode). Both know the latest version they hold per product,
so the encoder can drop stale events before spending the item tower on them."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from vitrine.index.port import Tombstone, VectorIndex, WriteResult
from vitrine.stream.kafka import require_read_committed
from vitrine.stream.records import VectorChange, decode_vector_change, encode_vector_change
from vitrine.stream.transactions import TransactionalProducer

log = logging.getLogger(__name__)


class VectorSink(Protocol):
    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Latest version held per product (upserts and deletes); absent ids are missing."""
        ...

    def write(self, changes: Sequence[VectorChange]) -> WriteResult:
        """Write and block until acknowledged; skip what is not newer than what is held."""
        ...

    def on_assigned(self) -> None:
        """Partitions were (re)assigned to this worker: refresh what the sink knows of other writers."""
        ...

    def close(self) -> None: ...


class IndexSink:
    """Server mode: write straight into a VectorIndex (its version guard makes retries harmless)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        return self.index.versions(product_ids)

    def on_assigned(self) -> None:
        """Nothing to refresh: versions are read from the index itself."""

    def write(self, changes: Sequence[VectorChange]) -> WriteResult:
        return self.index.apply([c.change for c in changes])

    def close(self) -> None:
        self.index.close()


class KafkaVectorSink:
    """Embedded mode: produce ItemVectors keyed by product id to the compacted vectors topic.

    The topic is compacted, so what survives compaction is the *last written* record per key: a stale
    vector written after a newer one would win. The sink therefore keeps the latest version written
    per product and never writes a change that is not newer. The map is restored from the topic
    itself at start (like a Kafka Streams state store from its changelog) and brought up to date with
    what other encoders of the group wrote whenever partitions move to this one (`on_assigned`): its
    consumer then reads only the records appended since its last read.

    With a `TransactionalProducer` (exactly-once mode) the records of a batch become visible only
    when the worker commits the batch's transaction; versions written are therefore staged and enter
    the map only when the transaction commits, and are forgotten when it aborts (the batch is then
    retried, or replayed by the partition's new owner). The restore consumer must read committed
    records only (`isolation_level="read_committed"`, the default of `make_consumer`), so aborted
    records never count as written.
    """

    def __init__(
        self,
        producer: KafkaProducer | TransactionalProducer,
        topic: str,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._versions: dict[str, int] = {}
        self._staged: dict[str, int] = {}  # written in the open transaction, not committed yet
        self.transactional = isinstance(producer, TransactionalProducer)
        if isinstance(producer, TransactionalProducer):
            producer.register(self)
        if consumer is not None:
            require_read_committed(consumer, "the vector sink's restore consumer")
        self._consumer = consumer  # assign mode, no group: reads the vectors topic for restores

    def transaction_committed(self) -> None:
        for product_id, version in self._staged.items():
            if version > self._versions.get(product_id, 0):
                self._versions[product_id] = version
        self._staged.clear()

    def transaction_aborted(self) -> None:
        self._staged.clear()

    def restore(self, consumer: KafkaConsumer | None = None, timeout_s: float = 120.0) -> int:
        """Read the vectors topic from the beginning to its current end; returns records read."""
        if consumer is not None:
            require_read_committed(consumer, "the vector sink's restore consumer")
            self._consumer = consumer
        if self._consumer is None:
            raise ValueError("restore needs a consumer (pass one here or to the constructor)")
        consumer = self._consumer
        ids = sorted(consumer.partitions_for_topic(self.topic) or ())
        partitions = [TopicPartition(self.topic, p) for p in ids]
        if not partitions:
            return 0
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        read = self._read_to_end(consumer, partitions, timeout_s)
        log.info("restored %d product versions from %d records of %s", len(self._versions), read, self.topic)
        return read

    def on_assigned(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        if not consumer.assignment():  # never restored: read the whole topic now
            self.restore()
            return
        read = self._read_to_end(consumer, sorted(consumer.assignment()), timeout_s=120.0)
        log.info("read %d records appended to %s since the last refresh", read, self.topic)

    def _read_to_end(
        self, consumer: KafkaConsumer, partitions: list[TopicPartition], timeout_s: float
    ) -> int:
        end = consumer.end_offsets(partitions)
        read = 0
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading versions from {self.topic} took longer than {timeout_s}s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.value is None:
                        continue
                    change = decode_vector_change(r.value)
                    if change.version > self._versions.get(change.product_id, 0):
                        self._versions[change.product_id] = change.version
                    read += 1
        return read

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        return {p: self._versions[p] for p in product_ids if p in self._versions}

    def write(self, changes: Sequence[VectorChange]) -> WriteResult:
        result = WriteResult()
        futures = []
        accepted: list[VectorChange] = []
        for change in changes:
            if change.version <= self._versions.get(change.product_id, 0):
                result.stale += 1
                result.stale_ids.append(change.product_id)
                continue
            value = encode_vector_change(change)
            futures.append(self._producer.send(self.topic, key=change.product_id.encode(), value=value))
            accepted.append(change)
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)
        written = self._staged if self.transactional else self._versions
        for change in accepted:
            written[change.product_id] = change.version
            if isinstance(change.change, Tombstone):
                result.deleted += 1
            else:
                result.written += 1
        return result

    def close(self) -> None:
        self._producer.flush()
        if self._consumer is not None:
            self._consumer.close()
