"""Where the encoder writes vectors: the compacted catalog.vectors topic (embedded mode, this module's
`KafkaVectorSink`) or, in server mode, the index itself (a `VectorIndex` from `open_index`). Both take
the same changes and follow the same version guard (`plan_versions`), and both know the latest version
they hold per product, so the encoder can drop stale events before spending the item tower on them."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from vitrine.index.port import Change, WriteResult
from vitrine.index.versioning import plan_versions
from vitrine.stream.kafka import require_read_committed
from vitrine.stream.kafka_compat import append_records
from vitrine.stream.partitioning import key_partitions
from vitrine.stream.records import decode_vector_version, encode_vector_changes
from vitrine.stream.transactions import TransactionalProducer

log = logging.getLogger(__name__)


class VectorSink(Protocol):
    """What the encoder writes to; a `VectorIndex` is one."""

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Latest version held per product (upserts and deletes); absent ids are missing."""
        ...

    def apply(self, changes: Sequence[Change], stored: Mapping[str, int] | None = None) -> WriteResult:
        """Write and block until acknowledged; skip what is not newer than what is held (`stored`:
        the versions this sink returned for the batch's products, when the caller read them)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CatchesUp(Protocol):
    """A sink that knows what it holds from what it wrote, so it must catch up with what other writers
    wrote when partitions move to this process (or it stalled and may have lost them). An index is
    asked directly and needs nothing of the kind."""

    def catch_up(self) -> None: ...


class KafkaVectorSink:
    """Embedded mode: produce ItemVectors keyed by product id to the compacted vectors topic.

    The topic is compacted, so what survives compaction is the *last written* record per key: a stale
    vector written after a newer one would win. The sink therefore keeps the latest version written
    per product and never writes a change that is not newer. The map is restored from the topic
    itself at start (like a Kafka Streams state store from its changelog) and brought up to date with
    what other encoders of the group wrote whenever partitions move to this one (`catch_up`): its
    consumer then reads only the records appended since its last read. The records carry
    `model_version`, the version of the model whose item tower made the vectors.

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
        *,
        model_version: str,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self.model_version = model_version
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

    def catch_up(self) -> None:
        """Read what other writers appended since the last read (the whole topic if never read)."""
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
                    product_id, version = decode_vector_version(r.value)
                    if version > self._versions.get(product_id, 0):
                        self._versions[product_id] = version
                    read += 1
        return read

    def versions(self, product_ids: Sequence[str]) -> dict[str, int]:
        return {p: self._versions[p] for p in product_ids if p in self._versions}

    def apply(self, changes: Sequence[Change], stored: Mapping[str, int] | None = None) -> WriteResult:
        plan = plan_versions(changes, self._versions if stored is None else stored)
        futures = self._send(plan.fresh)
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)
        written = self._staged if self.transactional else self._versions
        for c in plan.fresh:
            written[c.product_id] = c.version
        return plan.result()

    def _send(self, changes: Sequence[Change]) -> list[Any]:
        """Produce the changes, each to the partition the default partitioner gives its key
        (computed for the whole batch), a partition's records appended at once."""
        if not changes:
            return []
        keys = [c.product_id.encode() for c in changes]
        values = encode_vector_changes(changes, self.model_version)
        partitions = key_partitions(keys, self._producer.partitions_for(self.topic)).tolist()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value, partition in zip(keys, values, partitions, strict=True):
            by_partition.setdefault(partition, []).append((key, value))
        futures: list[Any] = []
        for partition, records in by_partition.items():
            if isinstance(self._producer, TransactionalProducer):
                futures += self._producer.append_records(self.topic, partition, records)
            else:
                futures += append_records(self._producer, self.topic, partition, records)
        return futures

    def close(self) -> None:
        self._producer.flush()
        if self._consumer is not None:
            self._consumer.close()
