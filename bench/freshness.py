"""Freshness: time from a catalogue event being produced to the product being returned by the
recommender (separate encoder and recommender processes, real broker, gRPC), at a steady background
ingest rate of --load × the measured maximum encoder throughput (issue 5: target p99 ≤ 1 s at 50 %).

    .venv/bin/vitrine bench freshness -- --max-rate 2000 --probes 200

Each probe publishes a brand-new product, then asks `Similar(new id)` every 5 ms until it answers.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import grpc
from _common import ensure_model, percentiles, write_result

from vitrine.api.client import RecommenderClient
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stack import LocalStack
from vitrine.stream.publisher import CatalogPublisher


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument(
        "--max-rate", type=float, required=True, help="measured max ingest rate (bench ingest)"
    )
    parser.add_argument("--load", type=float, default=0.5, help="background load as a fraction of --max-rate")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--catalogue", type=int, default=5000)
    args = parser.parse_args()

    model_dir = ensure_model(args.model).resolve()
    products = list(
        generate(SyntheticConfig(n_products=args.catalogue, n_sessions=10, n_baskets=10, seed=4)).products
    )
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-fresh-"))
    stack = LocalStack(work, model_dir)
    latencies: list[float] = []
    stop = threading.Event()
    try:
        stack.start_broker()
        stack.start_encoder(max_wait_ms="20")
        recommender = stack.start_recommender()
        with CatalogPublisher.connect(stack.kafka, stack.topics.products) as publisher:
            for p in products:
                publisher.upsert(p)
        client = RecommenderClient(recommender.grpc_target, timeout_s=2)
        _wait_found(client, products[-1].product_id, 300)

        rate = args.max_rate * args.load
        background = threading.Thread(
            target=_background_updates, args=(stack, products, rate, stop), daemon=True
        )
        background.start()
        probe_publisher = CatalogPublisher.connect(stack.kafka, stack.topics.products, linger_ms=0)
        for i in range(args.probes):
            template = products[i % len(products)]
            fresh = replace(template, product_id=f"probe-{i}", title=f"{template.title} probe {i}")
            started = time.perf_counter()
            probe_publisher.upsert(fresh)
            probe_publisher.flush()
            _wait_found(client, fresh.product_id, 30)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        stop.set()
        background.join(10)
        probe_publisher.close()
        client.close()
    finally:
        stop.set()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    stats = percentiles(latencies)
    print(
        f"event produced → returned by Similar, at {args.load:.0%} of {args.max_rate:,.0f} events/s background load:"
    )
    print(
        f"  p50 {stats['p50_ms']:.0f} ms   p90 {stats['p90_ms']:.0f} ms   p99 {stats['p99_ms']:.0f} ms   (target p99 ≤ 1000 ms)"
    )
    print(f"  ratio p99 / target: {stats['p99_ms'] / 1000:.2f}")
    write_result(
        "freshness",
        {
            "background_rate": args.max_rate * args.load,
            "load": args.load,
            "max_rate": args.max_rate,
            **stats,
            "target_p99_ms": 1000,
        },
    )


def _background_updates(stack: LocalStack, products: list, rate: float, stop: threading.Event) -> None:
    publisher = CatalogPublisher.connect(stack.kafka, stack.topics.products)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    i = 0
    while not stop.is_set():
        product = products[i % len(products)]
        publisher.upsert(replace(product, title=f"{product.title} u{i}"))
        i += 1
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if i % 200 == 0:
            publisher.flush()
    publisher.close()


def _wait_found(client: RecommenderClient, product_id: str, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while True:
        try:
            client.similar(product_id, limit=1)
            return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND or time.perf_counter() > deadline:
                raise
        time.sleep(0.005)


if __name__ == "__main__":
    main()
