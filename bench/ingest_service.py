"""The encoder service's ingest rate against Kafka's own producer, on one broker, in one run (issue 18).

Each round, interleaved (medians over --rounds):

1. the peer: Kafka's `ProducerPerformance` (the Java client, kafka-tools of the broker's version),
   --pp-records records of 300 B, acks=all, as fast as it goes, to a 2-partition topic;
2. the service: `vitrine encoder --exit-when-caught-up`, the real process with its defaults
   (exactly-once transactions, batch policy, thread pools), on a topic pre-filled with --small
   events, then on one pre-filled with --large events (distinct products, 2 partitions, as the
   encoder creates them). Each run has its own consumer group and vectors topic, so it replays the
   whole topic. Its time is the process's wall time, spawn to exit; the marginal rate
   (large - small) / (t_large - t_small) leaves out what every start pays once (interpreter, model,
   vectors-topic restore, group join).

ratio = marginal rate / ProducerPerformance rate (target ≥ 0.10). Load averages are recorded per
round: the development machine is shared, so only the side-by-side ratio means much. The CPU time
each process used (user + system, all threads) is recorded too: the encoder's marginal CPU per item
depends far less on what else runs than its wall-clock rate does.

    make kafka-tools    # once: Kafka's tools jar from Maven Central
    .venv/bin/vitrine bench ingest_service -- --rounds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import ensure_model, write_result
from _kafka_tools import producer_performance
from tqdm import tqdm

from vitrine.catalog.schema import ProductEvent
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.kafka import KafkaSettings, TopicNames, group_progress, make_admin, make_producer
from vitrine.stream.topics import TopicSpec, catalog_topics, ensure_topics


def load_average() -> float:
    return os.getloadavg()[0]


def prefill(kafka: KafkaSettings, topic: str, events: list[bytes], keys: list[bytes]) -> None:
    producer = make_producer(kafka, linger_ms=20, batch_size=512 * 1024)
    futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, events, strict=True)]
    producer.flush()
    for f in futures:
        f.get(timeout=60)
    producer.close()


def run_encoder(
    kafka: KafkaSettings,
    model_dir: Path,
    products_topic: str,
    work: Path,
    extra: tuple[str, ...] = (),
    pythonpath: str | None = None,
) -> tuple[float, float]:
    """Seconds from spawn to exit of `vitrine encoder --exit-when-caught-up` on `products_topic`, and
    the CPU seconds the process used (`pythonpath`: run the encoder of another source tree, e.g. the
    commit before a change)."""
    run = uuid.uuid4().hex[:8]
    group = f"bench-encoder-{run}"
    env = {
        **os.environ,
        "VITRINE_ENCODER_PRODUCTS_TOPIC": products_topic,
        "VITRINE_ENCODER_DEAD_LETTER_TOPIC": f"bench.dlq.{run}",
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [
        sys.executable,
        "-m",
        "vitrine.cli.main",
        "encoder",
        "--model",
        str(model_dir),
        "--bootstrap-servers",
        kafka.bootstrap_servers,
        "--group-id",
        group,
        "--vectors-topic",
        f"bench.vectors.{run}",
        "--metrics-port",
        "0",
        "--exit-when-caught-up",
        *extra,
    ]
    log_path = work / f"encoder-{run}.log"
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    with log_path.open("wb") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=1800).returncode
    seconds = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu_before
    if code != 0:
        raise RuntimeError(f"encoder exited with {code}:\n{log_path.read_text()[-3000:]}")
    progress = group_progress(kafka, group, products_topic)
    if any(committed != end for committed, end in progress.values()):
        raise RuntimeError(f"encoder exited before committing everything: {progress}")
    return seconds, cpu


def _children_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes (all their threads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small", type=int, default=20_000, help="events of the short run")
    parser.add_argument("--large", type=int, default=60_000, help="events of the long run")
    parser.add_argument("--pp-records", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument(
        "--encoder-arg", action="append", default=[], help="extra flag for the encoder (repeatable)"
    )
    parser.add_argument(
        "--baseline-pythonpath",
        default=None,
        help="also run, each round, the encoder found on this PYTHONPATH (a folder holding the packages "
        "vitrine and vitrine_services of an earlier commit) and report the speed-up",
    )
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must be more events than --small")

    model_dir = ensure_model(args.model).resolve()
    products = list(
        generate(SyntheticConfig(n_products=args.large, n_sessions=10, n_baskets=10, seed=7)).products
    )
    events = [ProductEvent.upsert(p, version=1).to_bytes() for p in products]
    keys = [p.product_id.encode() for p in products]

    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-ingest-service-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port(), heap="768m"))
    broker.start()
    rounds: list[dict[str, float]] = []
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        small, large = f"bench.products.{args.small}", f"bench.products.{args.large}"
        admin = make_admin(kafka)
        try:
            specs = [
                catalog_topics(TopicNames(t, f"{t}.v", f"{t}.dlq"), args.partitions)[0]
                for t in (small, large)
            ]
            ensure_topics(admin, [*specs, TopicSpec("bench.peer", args.partitions)])
        finally:
            admin.close()
        prefill(kafka, small, events[: args.small], keys[: args.small])
        prefill(kafka, large, events, keys)
        extra = tuple(args.encoder_arg)
        run_encoder(kafka, model_dir, small, work, extra)  # warm-up: page cache, JIT of the broker

        for r in tqdm(range(args.rounds), desc="rounds"):
            load = load_average()
            cpu_before = _children_cpu_s()
            peer = producer_performance(broker.bootstrap_servers, "bench.peer", args.pp_records)
            peer_cpu_us = (_children_cpu_s() - cpu_before) / args.pp_records * 1e6
            t_small, cpu_small = run_encoder(kafka, model_dir, small, work, extra)
            t_large, cpu_large = run_encoder(kafka, model_dir, large, work, extra)
            marginal = (args.large - args.small) / (t_large - t_small)
            cpu_us = (cpu_large - cpu_small) / (args.large - args.small) * 1e6
            baseline: dict[str, float] = {}
            if args.baseline_pythonpath:
                b_small, b_cpu_small = run_encoder(
                    kafka, model_dir, small, work, (), args.baseline_pythonpath
                )
                b_large, b_cpu_large = run_encoder(
                    kafka, model_dir, large, work, (), args.baseline_pythonpath
                )
                b_marginal = (args.large - args.small) / (b_large - b_small)
                baseline = {
                    "baseline_small_s": b_small,
                    "baseline_large_s": b_large,
                    "baseline_cpu_us_per_item": (b_cpu_large - b_cpu_small) / (args.large - args.small) * 1e6,
                    "baseline_marginal_items_per_s": b_marginal,
                    "baseline_ratio": b_marginal / peer.records_per_s,
                    "speedup": marginal / b_marginal,
                }
            row = {
                "round": r,
                "load_average_1m": load,
                "producer_performance_records_per_s": peer.records_per_s,
                "encoder_small_s": t_small,
                "encoder_large_s": t_large,
                "encoder_marginal_items_per_s": marginal,
                "encoder_large_items_per_s": args.large / t_large,
                "encoder_cpu_us_per_item": cpu_us,
                "producer_performance_cpu_us_per_record": peer_cpu_us,
                "ratio": marginal / peer.records_per_s,
                **baseline,
            }
            rounds.append(row)
            tqdm.write(
                f"round {r}: load {load:.1f}  ProducerPerformance {peer.records_per_s:,.0f} rec/s  "
                f"encoder {args.small:,} in {t_small:.1f}s, {args.large:,} in {t_large:.1f}s  "
                f"marginal {marginal:,.0f} items/s ({cpu_us:.0f} µs CPU each; the peer {peer_cpu_us:.1f})  "
                f"ratio {row['ratio']:.3f}"
                + (
                    f"  baseline marginal {baseline['baseline_marginal_items_per_s']:,.0f} items/s, "
                    f"{baseline['baseline_cpu_us_per_item']:.0f} µs CPU "
                    f"(ratio {baseline['baseline_ratio']:.3f}, speed-up {baseline['speedup']:.2f}x)"
                    if baseline
                    else ""
                )
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rounds)

    result = {
        "rounds": rounds,
        "small_events": args.small,
        "large_events": args.large,
        "partitions": args.partitions,
        "encoder_args": list(args.encoder_arg),
        "producer_performance_record_size": 300,
        "median_producer_performance_records_per_s": median("producer_performance_records_per_s"),
        "median_encoder_marginal_items_per_s": median("encoder_marginal_items_per_s"),
        "median_ratio": median("ratio"),
        "median_encoder_cpu_us_per_item": median("encoder_cpu_us_per_item"),
        "median_producer_performance_cpu_us_per_record": median("producer_performance_cpu_us_per_record"),
        "load_average_1m": [row["load_average_1m"] for row in rounds],
        "target_ratio": 0.10,
    }
    if args.baseline_pythonpath:
        result["baseline_pythonpath"] = args.baseline_pythonpath
        result["median_baseline_marginal_items_per_s"] = median("baseline_marginal_items_per_s")
        result["median_baseline_ratio"] = median("baseline_ratio")
        result["median_speedup"] = median("speedup")
        result["median_baseline_cpu_us_per_item"] = median("baseline_cpu_us_per_item")
    print(
        f"\nmedians over {len(rounds)} rounds: ProducerPerformance "
        f"{result['median_producer_performance_records_per_s']:,.0f} rec/s, encoder service marginal "
        f"{result['median_encoder_marginal_items_per_s']:,.0f} items/s, ratio {result['median_ratio']:.3f} "
        f"(target ≥ 0.10); load average {min(result['load_average_1m']):.1f}-{max(result['load_average_1m']):.1f}"
    )
    write_result("ingest_service", result)


if __name__ == "__main__":
    main()
