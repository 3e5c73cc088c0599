"""`vitrine produce`: publish a catalogue to catalog.products as ProductEvents."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "produce", help="publish a catalogue (synthetic or a dataset) as ProductEvents"
    )
    parser.add_argument(
        "--dataset",
        default="synthetic:2000",
        help="KIND:PATH with KIND in bundlerec, amazon, jsonl; or synthetic:N (default: %(default)s)",
    )
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="catalog.products")
    parser.add_argument("--limit", type=int, default=None, help="publish at most this many products")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)")
    parser.set_defaults(handler=_produce)


def _produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vitrine.data.datasets import load_dataset
    from vitrine.stream.kafka import KafkaSettings
    from vitrine.stream.publisher import CatalogPublisher

    dataset = load_dataset(args.dataset)
    products = dataset.products[: args.limit] if args.limit else dataset.products
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    with CatalogPublisher.connect(
        KafkaSettings(args.bootstrap_servers, client_id="vitrine-produce"), args.topic
    ) as pub:
        next_at = time.monotonic()
        for product in tqdm(products, desc="publishing", unit="event"):
            pub.upsert(product)
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        report = pub.flush()
    print(
        f"published {report.acknowledged}/{report.sent} events to {args.topic}; failed: {len(report.failed)}"
    )
    return 0 if not report.failed else 1
