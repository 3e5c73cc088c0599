"""Ingest throughput in one process: real broker → encoder pipeline and worker (consume, validate,
encode, write vectors, commit) versus the item tower alone (feature extraction, onnxruntime, k-means
cluster) on the same products at the same batch size, interleaved over --rounds (medians reported).

Target (issue 18): end-to-end / item tower ≥ 0.5. The worker runs as the service does in embedded
mode: the service's batch policy (count and time), its thread pools (1 thread: `vitrine.threads`),
one Kafka transaction per batch (vectors, dead letters and offsets; `--no-exactly-once` for plain
writes and commits). Each end-to-end round replays the pre-filled topic with a new consumer group
into a new vectors topic. `vitrine bench ingest_service` measures the service process itself.

    .venv/bin/vitrine bench ingest -- --events 20000 --rounds 5
"""

from __future__ import annotations

from vitrine.threads import limit_native_threads

limit_native_threads(1)  # as the encoder service does, before numpy is imported

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import ensure_model, write_result  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from vitrine.catalog.schema import Product  # noqa: E402
from vitrine.data.synthetic import SyntheticConfig, generate  # noqa: E402
from vitrine.model.inference import InferenceModel, load_inference_model  # noqa: E402
from vitrine.obs.metrics import EncoderMetrics  # noqa: E402
from vitrine.stream.batch_policy import BatchPolicy  # noqa: E402
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port  # noqa: E402
from vitrine.stream.dead_letters import KafkaDeadLetters  # noqa: E402
from vitrine.stream.kafka import (  # noqa: E402
    FLUSHING_PRODUCER,
    KafkaSettings,
    TopicNames,
    group_progress,
    make_consumer,
    make_producer,
)
from vitrine.stream.pipeline import BatchOutcome, EncoderPipeline  # noqa: E402
from vitrine.stream.publisher import CatalogPublisher  # noqa: E402
from vitrine.stream.sinks import KafkaVectorSink  # noqa: E402
from vitrine.stream.topics import ensure_catalog_topics  # noqa: E402
from vitrine.stream.transactions import TransactionalProducer, make_transactional_producer  # noqa: E402
from vitrine.stream.worker import EncoderWorker  # noqa: E402


def tower_rate(model: InferenceModel, products: list[Product], batch: int) -> tuple[float, float]:
    """Items/s and CPU µs per item of the item tower as the encoder runs it: features, onnxruntime,
    the k-means cluster of each vector."""
    model.assign_clusters(model.encode_items(products[:batch]))  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(products), batch):
        model.assign_clusters(model.encode_items(products[i : i + batch]))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(products) / seconds, cpu / len(products) * 1e6


def end_to_end_rate(
    kafka: KafkaSettings,
    model: InferenceModel,
    products_topic: str,
    events: int,
    policy: BatchPolicy,
    exactly_once: bool,
) -> tuple[float, float]:
    """Items/s and CPU µs per item (this process: worker, Kafka IO threads) end to end."""
    run = uuid.uuid4().hex[:8]
    topics = TopicNames(products_topic, f"bench.vectors.{run}", f"bench.dlq.{run}")
    ensure_catalog_topics(kafka, topics, 2)
    producer: KafkaProducer | TransactionalProducer
    transactions = None
    if exactly_once:
        transactions = make_transactional_producer(kafka, f"bench-encoder-{run}", **FLUSHING_PRODUCER)
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
    group = f"bench-encoder-{run}"
    consumer = make_consumer(kafka, group_id=group, max_poll_records=policy.max_records)
    committed = [0]  # records of committed batches (on_batch runs after the commit)

    def count(outcome: BatchOutcome) -> None:
        committed[0] += outcome.consumed

    worker = EncoderWorker(
        consumer, topics.products, pipeline, policy, metrics, on_batch=count, transactions=transactions
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    started, cpu = time.perf_counter(), time.process_time()
    thread.start()
    while committed[0] < events:
        time.sleep(0.005)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    worker.stop()
    thread.join(30)
    # a transaction's offsets reach the group a moment after commit_transaction() returns (the
    # coordinator writes the commit markers asynchronously): give them a few seconds
    deadline = time.monotonic() + 10
    while True:
        progress = group_progress(kafka, group, topics.products)
        if all(c == e for c, e in progress.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not all(c == e for c, e in progress.values()):
        raise RuntimeError(f"not all committed: {progress}")
    return events / seconds, cpu / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BatchPolicy.max_records)
    parser.add_argument("--max-wait-ms", type=int, default=BatchPolicy.max_wait_ms)
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument(
        "--exactly-once",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one Kafka transaction per batch, as the encoder service does (default)",
    )
    args = parser.parse_args()

    model = load_inference_model(ensure_model(args.model), threads=1)
    catalog = generate(SyntheticConfig(n_products=args.events, n_sessions=10, n_baskets=10, seed=3))
    products = list(catalog.products)
    policy = BatchPolicy(args.batch, args.max_wait_ms)

    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-ingest-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port(), heap="768m"))
    broker.start()
    rounds: list[dict[str, float]] = []
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = TopicNames("bench.products", "bench.vectors", "bench.dlq")
        ensure_catalog_topics(kafka, topics, args.partitions)
        with CatalogPublisher.connect(
            kafka, topics.products, linger_ms=20, batch_size=256 * 1024
        ) as publisher:
            for p in products:
                publisher.upsert(p)
        end_to_end_rate(kafka, model, topics.products, len(products), policy, args.exactly_once)  # warm-up
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            tower, tower_cpu = tower_rate(model, products, args.batch)
            e2e, e2e_cpu = end_to_end_rate(
                kafka, model, topics.products, len(products), policy, args.exactly_once
            )
            rounds.append(
                {
                    "round": r,
                    "load_average_1m": load,
                    "item_tower": tower,
                    "end_to_end": e2e,
                    "item_tower_cpu_us": tower_cpu,
                    "end_to_end_cpu_us": e2e_cpu,
                }
            )
            print(
                f"round {r}: load {load:.1f}  item tower {tower:,.0f} items/s ({tower_cpu:.0f} µs CPU each)  "
                f"end to end {e2e:,.0f} items/s ({e2e_cpu:.0f} µs CPU each)  ratio {e2e / tower:.2f}",
                flush=True,
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    tower = statistics.median(r["item_tower"] for r in rounds)
    e2e = statistics.median(r["end_to_end"] for r in rounds)
    ratio = statistics.median(r["end_to_end"] / r["item_tower"] for r in rounds)
    tower_cpu = statistics.median(r["item_tower_cpu_us"] for r in rounds)
    e2e_cpu = statistics.median(r["end_to_end_cpu_us"] for r in rounds)
    mode = "one transaction per batch" if args.exactly_once else "no transactions"
    print(
        f"\nmedians over {len(rounds)} rounds, batch {args.batch} / {args.max_wait_ms} ms, {mode}: item "
        f"tower (features + onnxruntime) {tower:,.0f} items/s, end to end (broker → encoder → vectors "
        f"topic, committed) {e2e:,.0f} items/s, ratio {ratio:.2f} (target ≥ 0.50); CPU per item "
        f"{tower_cpu:.0f} µs (tower) / {e2e_cpu:.0f} µs (end to end): CPU ratio {tower_cpu / e2e_cpu:.2f}"
    )
    write_result(
        "ingest",
        {
            "events": len(products),
            "batch": args.batch,
            "max_wait_ms": args.max_wait_ms,
            "partitions": args.partitions,
            "exactly_once": args.exactly_once,
            "model": model.model_version,
            "rounds": rounds,
            "item_tower_items_per_s": tower,
            "end_to_end_items_per_s": e2e,
            "ratio": ratio,
            "item_tower_cpu_us_per_item": tower_cpu,
            "end_to_end_cpu_us_per_item": e2e_cpu,
            "cpu_ratio": tower_cpu / e2e_cpu,
            "target_ratio": 0.5,
        },
    )


if __name__ == "__main__":
    main()
