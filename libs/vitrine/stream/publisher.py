"""For producers: build, key, version and publish ProductEvents with delivery confirmation.

    with CatalogPublisher.connect(KafkaSettings("broker:9092")) as publisher:
        publisher.upsert(product)            # version stamped from a monotonic microsecond clock
        publisher.delete("sku-123")
        publisher.flush()                    # every event above is acknowledged by the broker

The record key is the product id (so all events of a product land in one partition, in order); the
version must increase per product — pass your own (e.g. a database row version) or let the clock
stamp it. docs/EVENTS.md is the contract for producers in other languages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from vitrine.catalog.schema import Product, ProductEvent
from vitrine.stream.kafka import KafkaSettings, make_producer


class VersionClock:
    """Strictly increasing versions from wall-clock microseconds (never repeats, never goes back)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1_000)
            return self._last


@dataclass
class PublishReport:
    sent: int = 0
    acknowledged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (product id, error)


class CatalogPublisher:
    def __init__(self, producer: KafkaProducer, topic: str = "catalog.products") -> None:
        self._producer = producer
        self.topic = topic
        self.clock = VersionClock()
        self._pending: list[tuple[str, Any]] = []
        self._report = PublishReport()

    @classmethod
    def connect(
        cls, settings: KafkaSettings, topic: str = "catalog.products", **producer_config: Any
    ) -> CatalogPublisher:
        return cls(make_producer(settings, **producer_config), topic)

    def publish(self, event: ProductEvent) -> None:
        future = self._producer.send(self.topic, key=event.product_id.encode(), value=event.to_bytes())
        self._pending.append((event.product_id, future))
        self._report.sent += 1

    def upsert(self, product: Product, version: int | None = None, event_time: datetime | None = None) -> int:
        version = version or self.clock.next()
        self.publish(ProductEvent.upsert(product, version, event_time or datetime.now(UTC)))
        return version

    def delete(self, product_id: str, version: int | None = None) -> int:
        version = version or self.clock.next()
        self.publish(ProductEvent.delete(product_id, version))
        return version

    def publish_all(self, events: Iterable[ProductEvent]) -> PublishReport:
        for event in events:
            self.publish(event)
        return self.flush()

    def flush(self, timeout_s: float = 60.0) -> PublishReport:
        """Block until every event sent so far is acknowledged or failed; returns the running report."""
        self._producer.flush(timeout=timeout_s)
        for product_id, future in self._pending:
            try:
                future.get(timeout=timeout_s)
                self._report.acknowledged += 1
            except Exception as e:
                self._report.failed.append((product_id, f"{type(e).__name__}: {e}"))
        self._pending.clear()
        return self._report

    def close(self) -> None:
        self.flush()
        self._producer.close()

    def __enter__(self) -> CatalogPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
