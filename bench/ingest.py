"""Ingest throughput: real broker → encoder (consume, validate, encode, write vectors, commit) versus
the item tower alone (feature extraction + onnxruntime) at the same batch size, in one run.

Target (issue 5): end-to-end / item tower ≥ 0.8, i.e. the streaming plumbing costs at most 20 %.
The encoder runs as deployed in embedded mode: each batch is a Kafka transaction (vectors, dead
letters and offsets; `--no-exactly-once` for plain writes and commits, to measure what the
transactions cost).

    .venv/bin/vitrine bench ingest -- --events 20000 --batch 256
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import Timer, ensure_model, write_result
from kafka import KafkaProducer

from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import (
    FLUSHING_PRODUCER,
    KafkaSettings,
    TopicNames,
    group_progress,
    make_consumer,
    make_producer,
)
from vitrine.stream.pipeline import BatchOutcome, EncoderPipeline
from vitrine.stream.publisher import CatalogPublisher
from vitrine.stream.sinks import KafkaVectorSink
from vitrine.stream.topics import ensure_catalog_topics
from vitrine.stream.transactions import TransactionalProducer, make_transactional_producer
from vitrine.stream.worker import BatchPolicy, EncoderWorker


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument(
        "--exactly-once",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one Kafka transaction per batch, as the encoder service does (default)",
    )
    args = parser.parse_args()

    model_dir = ensure_model(args.model)
    model = load_inference_model(model_dir)
    catalog = generate(SyntheticConfig(n_products=args.events, n_sessions=10, n_baskets=10, seed=3))
    products = list(catalog.products)

    # 1) the item tower alone, same batches
    model.encode_items(products[: args.batch])  # warm-up
    with Timer() as tower:
        for i in range(0, len(products), args.batch):
            model.encode_items(products[i : i + args.batch])
    tower_rate = len(products) / tower.seconds
    print(f"item tower (features + onnxruntime), batch {args.batch}: {tower_rate:,.0f} items/s")

    # 2) end to end through a real broker
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-ingest-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port(), heap="768m"))
    broker.start()
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = TopicNames("bench.products", "bench.vectors", "bench.dlq")
        ensure_catalog_topics(kafka, topics, args.partitions)
        with CatalogPublisher.connect(
            kafka, topics.products, linger_ms=20, batch_size=256 * 1024
        ) as publisher:
            for p in products:
                publisher.upsert(p)
        producer: KafkaProducer | TransactionalProducer
        transactions = None
        if args.exactly_once:
            transactions = make_transactional_producer(kafka, "bench-encoder-0", **FLUSHING_PRODUCER)
            transactions.start()
            producer = transactions
        else:
            producer = make_producer(kafka, **FLUSHING_PRODUCER)
        metrics = EncoderMetrics()
        pipeline = EncoderPipeline(
            model,
            KafkaVectorSink(producer, topics.vectors, model_version=model.model_version),
            KafkaDeadLetters(producer, topics.dead_letters),
            metrics,
        )
        consumer = make_consumer(kafka, group_id="bench-encoder", max_poll_records=args.batch)
        committed = [0]  # records of committed batches (on_batch runs after the commit)

        def count(outcome: BatchOutcome) -> None:
            committed[0] += outcome.consumed

        worker = EncoderWorker(
            consumer,
            topics.products,
            pipeline,
            BatchPolicy(args.batch, 50),
            metrics,
            on_batch=count,
            transactions=transactions,
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        while committed[0] < len(products):
            time.sleep(0.01)
        e2e_seconds = time.perf_counter() - started
        worker.stop()
        thread.join(30)
        # a transaction's offsets reach the group a moment after commit_transaction() returns (the
        # coordinator writes the commit markers asynchronously): give them a few seconds
        deadline = time.monotonic() + 10
        while True:
            progress = group_progress(kafka, "bench-encoder", topics.products)
            if all(c == e for c, e in progress.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(c == e for c, e in progress.values()), f"not all committed: {progress}"
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    e2e_rate = len(products) / e2e_seconds
    ratio = e2e_rate / tower_rate
    mode = "one transaction per batch" if args.exactly_once else "no transactions"
    print(
        f"end to end (broker → encoder → vectors topic, committed; {mode}), batch {args.batch}: "
        f"{e2e_rate:,.0f} items/s"
    )
    print(f"ratio end-to-end / item tower: {ratio:.2f}  (target ≥ 0.80)")
    write_result(
        "ingest",
        {
            "events": len(products),
            "batch": args.batch,
            "partitions": args.partitions,
            "exactly_once": args.exactly_once,
            "model": model.model_version,
            "item_tower_items_per_s": tower_rate,
            "end_to_end_items_per_s": e2e_rate,
            "ratio": ratio,
            "target_ratio": 0.8,
        },
    )


if __name__ == "__main__":
    main()
