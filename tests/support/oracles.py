"""Oracles of the fault tests, after Kafka's `validate_delivery` and Qdrant's crasher: the state a
system holds is compared with the source of truth recomputed from what was published (never with
another replica), and every comparison names what is missing, stale or phantom.

States are `{product id: version}`, negative for a product whose last event is a delete.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import grpc

from vitrine.api.client import RecommenderClient
from vitrine.catalog.schema import Product
from vitrine.index.port import Tombstone
from vitrine.stream.kafka import KafkaSettings, group_progress, make_consumer
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.records import decode_vector_change

VERSION_IN_TITLE = re.compile(r" v(\d+)$")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.2)
    return time.monotonic() - started


def caught_up(kafka: KafkaSettings, group_id: str, topic: str) -> bool:
    try:
        progress = group_progress(kafka, group_id, topic)
    except Exception:  # the broker may be coming back
        return False
    return bool(progress) and all(committed >= end for committed, end in progress.values())


@dataclass
class Differences:
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)

    @property
    def none(self) -> bool:
        return not (self.missing or self.stale or self.phantom)

    def __str__(self) -> str:
        return (
            f"missing {len(self.missing)} {self.missing[:5]}, stale {len(self.stale)} {self.stale[:5]}, "
            f"phantom {len(self.phantom)} {self.phantom[:5]}"
        )


def compare(expected: dict[str, int], held: dict[str, int], deletes_absent: bool = False) -> Differences:
    """`held` against `expected`. `deletes_absent`: `held` lists live products only (a replica), so a
    product deleted last must be absent and a live one present at its version."""
    if deletes_absent:
        expected = {p: v for p, v in expected.items() if v > 0}
    return Differences(
        missing=sorted(set(expected) - set(held)),
        stale=sorted(p for p, v in expected.items() if p in held and held[p] != v),
        phantom=sorted(set(held) - set(expected)),
    )


@dataclass
class VectorsTopic:
    last: dict[str, int]  # last record per key: what compaction keeps
    highest: dict[str, int]
    records: int
    duplicates: int  # (product, version) pairs written more than once


def read_vectors(kafka: KafkaSettings, topic: str, isolation_level: str = "read_committed") -> VectorsTopic:
    consumer = make_consumer(kafka, topic, consumer_timeout_ms=3000, isolation_level=isolation_level)
    last: dict[str, int] = {}
    highest: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    records = duplicates = 0
    for record in consumer:
        change = decode_vector_change(record.value)
        pid = change.product_id
        last[pid] = -change.version if isinstance(change.change, Tombstone) else change.version
        highest[pid] = max(highest.get(pid, 0), change.version)
        records += 1
        duplicates += (pid, change.version) in seen
        seen.add((pid, change.version))
    consumer.close()
    return VectorsTopic(last, highest, records, duplicates)


def replica_state(client: RecommenderClient, limit: int = 500) -> dict[str, int]:
    """Every live product a replica serves, with the version in its title (`... v<version>`): one
    Similar from an inline anchor with no filter, so it lists the whole index of up to `limit`
    items (exact below the full-scan threshold). What is served, through the API."""
    probe = Product("__probe__", "oracle probe zzqx")
    result = client.similar(product=probe, limit=limit, include_out_of_stock=True)
    state: dict[str, int] = {}
    for item in result.items:
        match = VERSION_IN_TITLE.search(item.title)
        state[item.product_id] = int(match.group(1)) if match else 0
    if len(state) >= limit:
        raise AssertionError(f"the replica holds {limit} items or more: the probe cannot list them all")
    return state


def replica_state_or_none(target: str) -> dict[str, int] | None:
    try:
        with RecommenderClient(target, timeout_s=5) as client:
            return replica_state(client)
    except grpc.RpcError:
        return None


class History:
    """Publishes versions of a catalogue and keeps the source of truth: the last event per product
    (version, negative for a delete). Versions only grow per product (the contract)."""

    def __init__(self, kafka: KafkaSettings, topic: str, products: list[Product], seed: int) -> None:
        self.kafka = kafka
        self.topic = topic
        self.products = products
        self.rng = random.Random(seed)
        self.expected: dict[str, int] = {}
        self.version = 0
        self.published = 0
        self._lock = threading.Lock()

    def publish_round(self, share: float = 1.0, delete_share: float = 0.0) -> None:
        """One new version for `share` of the products (some of them deletes)."""
        with self._lock:
            self.version += 1
            version = self.version
        chosen = self.rng.sample(self.products, max(1, int(share * len(self.products))))
        with CatalogPublisher.connect(self.kafka, self.topic) as publisher:
            for p in chosen:
                if self.rng.random() < delete_share:
                    publisher.delete(p.product_id, version=version)
                    value = -version
                else:
                    publisher.upsert(replace(p, title=f"{p.title} v{version}"), version=version)
                    value = version
                with self._lock:
                    self.expected[p.product_id] = value
                    self.published += 1
            report = publisher.flush()
        assert not report.failed, report.failed[:3]

    def keep_publishing(
        self, stop: threading.Event, pause_s: float = 0.2, share: float = 0.3
    ) -> threading.Thread:
        """Rounds in a thread until `stop`: events still arrive while faults are injected."""

        def run() -> None:
            while not stop.is_set():
                self.publish_round(share, delete_share=0.05)
                stop.wait(pause_s)

        thread = threading.Thread(target=run, name="publisher", daemon=True)
        thread.start()
        return thread
