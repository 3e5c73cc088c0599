"""Impressions from the serving path: one record per returned list, never on the request's clock.

`record()` is what a request pays: a bounds check and a deque append (thread-safe in CPython, no lock,
no I/O, no protobuf). A background thread turns the queued lists into `Interaction`s and hands them to
a KafkaProducer (itself asynchronous). When the queue is full (the broker is slow or down) the list is
dropped and counted (`vitrine_recommender_impressions_dropped_total{reason="buffer_full"}`): losing an
impression only loses a little statistical power, blocking would cost every request its latency.
Failed sends are counted as `send_failed`. Duplicates (a producer retry) are harmless: the feedback
service counts a recommendation id once.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from vitrine.feedback.interactions import impression_bytes, record_key
from vitrine.obs.metrics import ImpressionMetrics
from vitrine.serving.results import Task

log = logging.getLogger(__name__)


# The recorder's producer: large, lazy batches (fewer wake-ups of kafka-python's IO thread, which shares
# the GIL with the request threads), and a short block when the broker is gone (only the sender waits).
IMPRESSION_PRODUCER: dict[str, Any] = {"linger_ms": 100, "batch_size": 256 * 1024, "max_block_ms": 1000}


def new_recommendation_id() -> str:
    """128 random bits as 32 hex digits (os.urandom: no UUID object on the request path)."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class ShownEntry:
    """What the request path queues: plain values, turned into a protobuf off the request thread."""

    recommendation_id: str
    unit_key: str
    placement: str
    experiment: str
    variant: str
    control_variant: str
    model_version: str
    task: Task
    product_ids: tuple[str, ...]
    time_ns: int


class ImpressionRecorder:
    def __init__(
        self,
        producer_factory: Callable[[], KafkaProducer],
        topic: str,
        metrics: ImpressionMetrics,
        capacity: int = 10_000,
        drain_interval_s: float = 0.005,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._factory = producer_factory
        self.topic = topic
        self.metrics = metrics
        self.capacity = capacity
        self.drain_interval_s = drain_interval_s
        self._queue: deque[ShownEntry] = deque()
        self._accepted = itertools.count(1)  # next() is atomic in CPython: safe from every request thread
        self._last_accepted = 0
        self._handed_over = 0  # entries given to the producer (or failed), by the sender thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: KafkaProducer | None = None

    # -- the request path --------------------------------------------------------------------------

    def record(
        self,
        recommendation_id: str,
        unit_key: str,
        placement: str,
        experiment: str,
        variant: str,
        control_variant: str,
        model_version: str,
        task: Task,
        product_ids: Sequence[str],
    ) -> bool:
        """Queue one list; False (and counted) when the buffer is full. Never blocks."""
        if len(self._queue) >= self.capacity:
            self.metrics.dropped.labels("buffer_full").inc()
            return False
        self._last_accepted = next(self._accepted)
        self._queue.append(
            ShownEntry(
                recommendation_id,
                unit_key,
                placement,
                experiment,
                variant,
                control_variant,
                model_version,
                task,
                tuple(product_ids),
                time.time_ns(),
            )
        )
        return True

    # -- the background sender ---------------------------------------------------------------------

    def start(self) -> ImpressionRecorder:
        self._thread = threading.Thread(target=self._run, name="impression-recorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._drain():
                self._stop.wait(self.drain_interval_s)
        self._drain()

    def _drain(self) -> int:
        sent = 0
        queue = self._queue
        while queue:
            if sent % 16 == 15:
                time.sleep(0)  # let request threads have the GIL between chunks of this work
            entry = queue.popleft()
            try:
                self._send(entry)
                sent += 1
            except Exception as e:  # the broker is unreachable, a producer error: count, go on
                self.metrics.dropped.labels("send_failed").inc()
                log.warning("impression not sent (%s: %s)", type(e).__name__, e)
            self._handed_over += 1
        self.metrics.buffered.set(len(queue))
        return sent

    def _send(self, e: ShownEntry) -> None:
        if self._producer is None:
            self._producer = self._factory()
        value = impression_bytes(
            e.recommendation_id,
            e.unit_key,
            e.placement,
            e.time_ns,
            e.product_ids,
            e.experiment,
            e.variant,
            e.control_variant,
            e.model_version,
            e.task,
        )
        key = record_key(e.unit_key, e.recommendation_id).encode()
        future = self._producer.send(self.topic, key=key, value=value)
        future.add_callback(self._sent)
        future.add_errback(self._failed)

    def _sent(self, _metadata: Any) -> None:  # on the producer's IO thread
        self.metrics.recorded.inc()

    def _failed(self, error: BaseException) -> None:
        self.metrics.dropped.labels("send_failed").inc()
        log.warning("impression not acknowledged: %s", error)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything recorded so far is sent and acknowledged (tests, the simulator)."""
        deadline = time.monotonic() + timeout_s
        target = self._last_accepted
        while self._handed_over < target and time.monotonic() < deadline:
            time.sleep(self.drain_interval_s)
        if self._producer is not None:
            self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then close the producer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._producer is not None:
            try:
                self._producer.flush(timeout=timeout_s)
                self._producer.close(timeout=timeout_s)
            except Exception as e:
                log.warning("closing the impression producer: %s", e)
