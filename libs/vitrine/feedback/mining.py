"""Training data from the interaction log: co-view sessions and co-purchase baskets, as a `Dataset`.

The pairs are then built by the very functions the offline loaders feed (`vitrine.data.pairs`:
`similar_pairs`, `complementary_pairs`, with their thresholds, the substitute and complementarity
heuristics and the group-size cap), so a model trained on `interactions:` data follows the same pair
rules as one trained on BundleRec or Amazon files.

- A unit's clicks and add-to-carts (organic or on a recommendation) form browsing sessions, split at
  `session_gap_s` of inactivity: the co-view groups (`Dataset.sessions`).
- Purchases form baskets: those sharing an `order_id`, else a unit's purchases in one session: the
  co-purchase groups (`Dataset.bundles`).
- Impressions are not behaviour (a list shown is not a list wanted) and are not mined.

Products come from the catalogue topic (compacted `catalog.products`: the newest event per product,
deletes and invalid events left out); interactions with products outside it are counted and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from kafka.structs import TopicPartition

from vitrine.catalog.schema import Product
from vitrine.catalog.validation import decode_event
from vitrine.data.datasets import Dataset, LoadReport
from vitrine.errors import ConfigError, InvalidEventError
from vitrine.feedback.interactions import Interaction, InteractionType, decode_interaction
from vitrine.stream.kafka import KafkaSettings, make_consumer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MiningConfig:
    session_gap_s: float = 1800.0
    max_group_size: int = (
        30  # as PairConfig: longer sessions are browsing noise (dropped by the pair rules too)
    )


def mine_dataset(
    products: Sequence[Product],
    interactions: Iterable[Interaction],
    config: MiningConfig | None = None,
    name: str = "interactions",
) -> Dataset:
    config = config or MiningConfig()
    known = {p.product_id for p in products}
    report = LoadReport(source=name)
    per_unit: dict[str, list[Interaction]] = defaultdict(list)
    for e in interactions:
        report.read += 1
        if e.type is InteractionType.IMPRESSION:
            report.skip("impression")
            continue
        if e.product_id not in known:
            report.skip("product_outside_catalogue", e.product_id)
            continue
        per_unit[e.key].append(e)
        report.kept += 1
    gap = timedelta(seconds=config.session_gap_s)
    sessions: list[tuple[str, ...]] = []
    orders: dict[str, list[str]] = defaultdict(list)
    for unit in sorted(per_unit):
        events = sorted(per_unit[unit], key=lambda e: (e.event_time, e.event_id))
        session: list[str] = []
        session_no = 0
        last: datetime | None = None
        for e in events:
            if last is not None and e.event_time - last > gap:
                if len(session) >= 2:
                    sessions.append(tuple(dict.fromkeys(session)))
                session, session_no = [], session_no + 1
            last = e.event_time
            if e.type is InteractionType.PURCHASE:
                orders[e.order_id or f"{unit}\x1f{session_no}"].append(e.product_id)
            else:
                session.append(e.product_id)
        if len(session) >= 2:
            sessions.append(tuple(dict.fromkeys(session)))
    bundles = [tuple(dict.fromkeys(items)) for _, items in sorted(orders.items()) if len(set(items)) >= 2]
    log.info("%s: %d sessions, %d baskets from %d units", name, len(sessions), len(bundles), len(per_unit))
    return Dataset(
        name=name,
        products=tuple(products),
        sessions=tuple(s for s in sessions if len(s) >= 2),
        bundles=tuple(bundles),
        reports=(report,),
    )


# -- reading the log -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InteractionSource:
    """`kafka://HOST:PORT[?interactions=TOPIC&products=TOPIC&days=N&session_gap_s=S]`"""

    bootstrap_servers: str
    interactions_topic: str = "catalog.interactions"
    products_topic: str = "catalog.products"
    days: float | None = None
    session_gap_s: float = 1800.0

    @classmethod
    def parse(cls, text: str) -> InteractionSource:
        url = urlsplit(text)
        if url.scheme != "kafka" or not url.netloc:
            raise ConfigError(
                f"interactions dataset must look like kafka://HOST:PORT[?interactions=TOPIC&products=TOPIC&days=N], got {text!r}"
            )
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        unknown = set(query) - {"interactions", "products", "days", "session_gap_s"}
        if unknown:
            raise ConfigError(f"unknown interactions dataset option(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                url.netloc,
                query.get("interactions", "catalog.interactions"),
                query.get("products", "catalog.products"),
                float(query["days"]) if "days" in query else None,
                float(query.get("session_gap_s", 1800.0)),
            )
        except ValueError as e:
            raise ConfigError(
                f"interactions dataset options must be numbers where numbers are expected: {e}"
            ) from e


def _read(
    settings: KafkaSettings, topic: str, since_ms: int | None = None, timeout_s: float = 600.0
) -> Iterator:
    consumer = make_consumer(settings, group_id=None, client_id=f"{settings.client_id}-mining")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise ConfigError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        if since_ms is not None:
            for tp, found in consumer.offsets_for_times({tp: since_ms for tp in partitions}).items():
                if found is not None:
                    consumer.seek(tp, found.offset)
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=500).values():
                yield from records
    finally:
        consumer.close()


def read_catalogue(settings: KafkaSettings, topic: str) -> list[Product]:
    """The current catalogue: the newest valid event per product, deletes removed."""
    newest: dict[str, tuple[int, Product | None]] = {}
    for r in _read(settings, topic):
        try:
            event = decode_event(r.value, r.key)
        except InvalidEventError:
            continue
        if event.version > newest.get(event.product_id, (0, None))[0]:
            newest[event.product_id] = (event.version, event.product)
    return [p for _, p in (newest[k] for k in sorted(newest)) if p is not None]


def read_interactions(
    settings: KafkaSettings, topic: str, since: datetime | None = None
) -> Iterator[Interaction]:
    since_ms = int(since.timestamp() * 1000) if since else None
    for r in _read(settings, topic, since_ms):
        try:
            e = decode_interaction(r.value, r.key)
        except InvalidEventError:
            continue
        if since is None or e.event_time >= since:
            yield e


def load_interactions(spec_path: str, settings: KafkaSettings | None = None) -> Dataset:
    """The `interactions:` dataset kind (`vitrine train --dataset interactions:kafka://...`)."""
    source = InteractionSource.parse(spec_path)
    settings = settings or KafkaSettings(source.bootstrap_servers, client_id="vitrine-train")
    products = read_catalogue(settings, source.products_topic)
    if not products:
        raise ConfigError(f"no products in {source.products_topic}: the interactions need their catalogue")
    since = datetime.now(UTC) - timedelta(days=source.days) if source.days else None
    dataset = mine_dataset(
        products,
        read_interactions(settings, source.interactions_topic, since),
        MiningConfig(session_gap_s=source.session_gap_s),
        name=f"interactions:{source.interactions_topic}",
    )
    return dataset
