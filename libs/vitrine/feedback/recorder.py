"""Impressions from the serving path: one record per returned list, never on the request's clock.

`record()` is what a request pays: a bounds check and a deque append (thread-safe in CPython, no lock,
no I/O, no protobuf). A background thread, waking every 200 ms (wake-ups, not records, were most of
the recorder's CPU), hands the queued lists, in chunks, through a pipe to a
sender process that builds the protobufs and owns the KafkaProducer: kafka-python's per-record work
(partitioning, batching, its IO thread: ~70 us per record measured) runs on another core, off the
server's GIL. When the queue is full (the sender or the broker is slow or down) the list is dropped
and counted (`vitrine_recommender_impressions_dropped_total{reason="buffer_full"}`): losing an
impression only loses a little statistical power, blocking would cost every request its latency.
Records the broker refused count as `send_failed`; a sender process that dies is restarted. Duplicates
(a producer retry) are harmless: the feedback service counts a recommendation id once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing as mp
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from vitrine.obs.metrics import ImpressionMetrics
from vitrine.serving.results import Task
from vitrine.stream.kafka import KafkaSettings

log = logging.getLogger(__name__)

# The sender's producer: large, lazy batches, and short waits when the broker is gone (the lists meanwhile
# are counted as not sent; the next chunk tries again). Every wake-up of the drain thread, the sender
# process, kafka-python's IO thread and the broker costs CPU on the server's cores: at 200 lists/s a 10 ms
# drain and a 100 ms linger cost ~1.3 ms of CPU per list on the host, a 200 ms drain and a 300 ms linger
# ~0.6 ms (docs/BENCHMARKS.md). An impression reaches the topic within ~0.5 s, well inside any
# attribution window.
IMPRESSION_PRODUCER: dict[str, Any] = {
    "linger_ms": 300,
    "batch_size": 256 * 1024,
    "max_block_ms": 1000,
    "bootstrap_timeout_ms": 2000,
}
_CHUNK = 256  # lists per message to the sender process


@dataclass(frozen=True, slots=True)
class ShownEntry:
    """What the request path queues: plain values, turned into a protobuf in the sender process."""

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
        settings: KafkaSettings,
        topic: str,
        metrics: ImpressionMetrics,
        capacity: int = 10_000,
        producer_config: dict[str, Any] | None = None,
        drain_interval_s: float = 0.2,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.settings = settings
        self.topic = topic
        self.metrics = metrics
        self.capacity = capacity
        self.producer_config = {**IMPRESSION_PRODUCER, **(producer_config or {})}
        self.drain_interval_s = drain_interval_s
        self._queue: deque[ShownEntry] = deque()
        self._accepted = itertools.count(1)  # next() is atomic in CPython: safe from every request thread
        self._last_accepted = 0
        self._handed_over = 0  # entries given to the sender process (or dropped), by the drain thread
        self._stop = threading.Event()
        self._wake = threading.Event()  # flush() and close() wake the drain thread at once
        self._thread: threading.Thread | None = None
        self._process: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # the pipe: the drain thread and flush()/close()

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

    # -- the drain thread --------------------------------------------------------------------------

    def start(self) -> ImpressionRecorder:
        with self._lock:
            self._start_sender()  # now, not at the first request: its start-up costs a second of CPU
        self._thread = threading.Thread(target=self._run, name="impression-recorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.drain_interval_s)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            chunk = [queue.popleft() for _ in range(min(_CHUNK, len(queue)))]
            try:
                with self._lock:
                    self._send("lists", [_row(e) for e in chunk])
                    self._read_reports()
            except (OSError, EOFError, ValueError) as e:  # the sender process is gone: count, restart
                self.metrics.dropped.labels("send_failed").inc(len(chunk))
                log.warning("impression sender unavailable (%s: %s); restarting it", type(e).__name__, e)
                self._reset()
                self._stop.wait(1.0)
            self._handed_over += len(chunk)
        with self._lock:
            if self._conn is not None:
                try:
                    self._read_reports()
                except (OSError, EOFError):
                    self._reset()
        self.metrics.buffered.set(len(queue))

    def _send(self, kind: str, body: Any) -> None:
        """One message to the sender process: JSON (plain data, nothing that can execute code)."""
        if self._conn is None:
            self._start_sender()
        assert self._conn is not None
        self._conn.send_bytes(json.dumps([kind, body]).encode())

    def _read_reports(self, until: str | None = None, timeout_s: float = 0.0) -> None:
        """Take the sender's acknowledgement counts; with `until`, wait (up to timeout_s) for that reply."""
        assert self._conn is not None
        deadline = time.monotonic() + timeout_s
        while True:
            wait = max(0.0, deadline - time.monotonic()) if until else 0.0
            if not self._conn.poll(wait):
                if until and time.monotonic() < deadline:
                    continue
                return
            kind, acked, failed = json.loads(self._conn.recv_bytes())
            if acked:
                self.metrics.recorded.inc(acked)
            if failed:
                self.metrics.dropped.labels("send_failed").inc(failed)
            if kind == until:
                return

    def _start_sender(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds gRPC and onnxruntime state
        parent, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_sender_main,
            args=(child, self.settings, self.topic, self.producer_config),
            name="impression-sender",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._conn = parent

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        self._process = None

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything recorded so far is sent and acknowledged (tests, the simulator)."""
        deadline = time.monotonic() + timeout_s
        target = self._last_accepted
        self._wake.set()
        while self._handed_over < target and time.monotonic() < deadline:
            time.sleep(0.005)
            self._wake.set()
        with self._lock:
            if self._conn is not None:
                self._send("flush", None)
                self._read_reports("flushed", max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then stop the sender process."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            if self._conn is not None:
                try:
                    self._send("close", timeout_s)
                    self._read_reports("closed", timeout_s + 1)
                except (OSError, EOFError) as e:
                    log.warning("closing the impression sender: %s", e)
            if self._process is not None:
                self._process.join(timeout_s)
            self._reset()


def _row(e: ShownEntry) -> list[Any]:
    return [
        e.recommendation_id,
        e.unit_key,
        e.placement,
        e.experiment,
        e.variant,
        e.control_variant,
        e.model_version,
        e.task.value,
        list(e.product_ids),
        e.time_ns,
    ]


def _sender_main(
    conn: Connection, settings: KafkaSettings, topic: str, producer_config: dict[str, Any]
) -> None:
    """The sender process: lists in, Interaction records out, acknowledgement counts back."""
    from vitrine.feedback.interactions import impression_bytes, record_key
    from vitrine.stream.kafka import make_producer

    counts = {"acked": 0, "failed": 0}
    lock = threading.Lock()

    def acked(_: Any) -> None:
        with lock:
            counts["acked"] += 1

    def failed(error: BaseException) -> None:
        with lock:
            counts["failed"] += 1

    def report(kind: str) -> None:
        with lock:
            a, f = counts["acked"], counts["failed"]
            counts["acked"] = counts["failed"] = 0
        conn.send_bytes(json.dumps([kind, a, f]).encode())

    producer = None
    last_report = time.monotonic()
    down_until = 0.0
    while True:
        try:
            ready = conn.poll(0.2)
            message = json.loads(conn.recv_bytes()) if ready else ("idle", None)
        except (EOFError, OSError):  # the recommender is gone
            break
        kind, body = message
        if kind == "lists":
            for row in body or ():
                if time.monotonic() < down_until:  # the broker was unreachable a moment ago: fail fast
                    failed(RuntimeError("broker unavailable"))
                    continue
                try:
                    if producer is None:
                        producer = make_producer(settings, **producer_config)
                    (
                        rec_id,
                        unit_key,
                        placement,
                        experiment,
                        variant,
                        control,
                        model_version,
                        task,
                        ids,
                        time_ns,
                    ) = row
                    value = impression_bytes(
                        rec_id,
                        unit_key,
                        placement,
                        time_ns,
                        ids,
                        experiment,
                        variant,
                        control,
                        model_version,
                        Task(task),
                    )
                    key = record_key(unit_key, rec_id).encode()
                    future = producer.send(topic, key=key, value=value)
                    future.add_callback(acked)
                    future.add_errback(failed)
                except Exception as error:  # no broker (metadata not within max_block_ms), ...: counted
                    failed(error)
                    down_until = time.monotonic() + 1.0
        elif kind in ("flush", "close"):
            if producer is not None:
                with contextlib.suppress(Exception):
                    producer.flush(timeout=body if kind == "close" else None)
            if kind == "close":
                if producer is not None:
                    producer.close(timeout=1)
                report("closed")
                break
            report("flushed")
            continue
        if time.monotonic() - last_report >= 0.5:
            last_report = time.monotonic()
            report("counts")
