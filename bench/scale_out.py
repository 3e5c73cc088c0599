"""Scale-out: 1, 2 and 4 encoder processes in one consumer group against one, on one broker (issue 18).

Per round and process count k (interleaved, medians over --rounds): k `vitrine encoder` processes
(the real service, defaults, exactly-once) start with a new group on an empty --partitions-partition
topic and wait until the group is stable with all k members; then --events ProductEvents (distinct
products) are published at once and the group's committed offsets are sampled every 0.25 s. The
rate is the slope of the committed total between 15 % and 85 % of the events: a steady state with
all k members busy, without start-up, publishing or the tail. Each k gets its own products topic, so
no run sees another's records.

Target (issue 18): two processes ≥ 1.6x one on this 2-core machine (partitions ≥ processes).

    .venv/bin/vitrine bench scale_out -- --processes 1 2 4 --partitions 4 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from _common import ensure_model, write_result

from vitrine.catalog.schema import ProductEvent
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.kafka import KafkaSettings, TopicNames, group_progress, make_admin, make_producer
from vitrine.stream.topics import ensure_catalog_topics


def start_encoders(
    kafka: KafkaSettings, model_dir: Path, topics: TopicNames, group: str, k: int, work: Path
) -> list[tuple[subprocess.Popen[bytes], int]]:
    env = {
        **os.environ,
        "VITRINE_ENCODER_PRODUCTS_TOPIC": topics.products,
        "VITRINE_ENCODER_DEAD_LETTER_TOPIC": topics.dead_letters,
    }
    processes = []
    for i in range(k):
        port = free_port()
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
            topics.vectors,
            "--metrics-port",
            str(port),
        ]
        with (work / f"{group}-{i}.log").open("wb") as log:
            processes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), port))
    return processes


def wait_stable(
    kafka: KafkaSettings, group: str, members: int, processes: list, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    admin = make_admin(kafka)
    try:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p, _ in processes):
                raise RuntimeError("an encoder exited during start-up")
            try:
                described = admin.describe_groups([group])
            except Exception:  # the group does not exist until its first member joins
                described = {}
            info = described.get(group, {}) if isinstance(described, dict) else {}
            if info.get("group_state") == "Stable" and len(info.get("members", [])) == members:
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise RuntimeError(f"group {group} did not become stable with {members} members in {timeout_s:.0f}s")


def wait_metrics(processes: list, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    for process, port in processes:
        while True:
            if process.poll() is not None:
                raise RuntimeError("an encoder exited during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("encoders did not start") from None
                time.sleep(0.3)


def measure(
    kafka: KafkaSettings,
    model_dir: Path,
    k: int,
    partitions: int,
    events: list[tuple[bytes, bytes]],
    work: Path,
) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    topics = TopicNames(f"scale.products.{run}", f"scale.vectors.{run}", f"scale.dlq.{run}")
    ensure_catalog_topics(kafka, topics, partitions)
    group = f"scale-{k}-{run}"
    processes = start_encoders(kafka, model_dir, topics, group, k, work)
    try:
        wait_metrics(processes)
        wait_stable(kafka, group, k, processes)
        producer = make_producer(kafka, linger_ms=20, batch_size=512 * 1024)
        published_at = time.monotonic()
        futures = [producer.send(topics.products, key=key, value=value) for key, value in events]
        producer.flush()
        for f in futures:
            f.get(timeout=60)
        producer.close()
        total = len(events)
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            committed = sum(c for c, _ in group_progress(kafka, group, topics.products).values())
            samples.append((time.monotonic() - published_at, committed))
            if committed >= total:
                break
            if any(p.poll() is not None for p, _ in processes):
                raise RuntimeError("an encoder exited while consuming")
            time.sleep(0.25)
        (t0, c0) = next(s for s in samples if s[1] >= 0.15 * total)
        (t1, c1) = next(s for s in samples if s[1] >= 0.85 * total)
        return {
            "processes": k,
            "items_per_s": (c1 - c0) / (t1 - t0),
            "all_committed_s": samples[-1][0],
            "load_average_1m": os.getloadavg()[0],
        }
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if max(args.processes) > args.partitions:
        parser.error("partitions must be at least the largest process count")

    model_dir = ensure_model(args.model).resolve()
    products = generate(SyntheticConfig(n_products=args.events, n_sessions=10, n_baskets=10, seed=9)).products
    events = [(p.product_id.encode(), ProductEvent.upsert(p, version=1).to_bytes()) for p in products]
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-scale-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port(), heap="768m"))
    broker.start()
    rows: list[dict[str, float]] = []
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        for r in range(args.rounds):
            for k in args.processes:
                row = {"round": r, **measure(kafka, model_dir, k, args.partitions, events, work)}
                rows.append(row)
                print(
                    f"round {r}: {k} process(es) on {args.partitions} partitions: "
                    f"{row['items_per_s']:,.0f} items/s (load {row['load_average_1m']:.1f})",
                    flush=True,
                )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    medians = {
        k: statistics.median(row["items_per_s"] for row in rows if row["processes"] == k)
        for k in args.processes
    }
    base = medians[min(args.processes)]
    # speed-up per round (each round measures every k one after the other), then the median
    speedups = {
        k: statistics.median(
            next(x["items_per_s"] for x in rows if x["round"] == r and x["processes"] == k)
            / next(
                x["items_per_s"] for x in rows if x["round"] == r and x["processes"] == min(args.processes)
            )
            for r in range(args.rounds)
        )
        for k in args.processes
    }
    print(f"\nmedians over {args.rounds} rounds, {args.partitions} partitions:")
    for k in args.processes:
        print(
            f"  {k} process(es): {medians[k]:,.0f} items/s, {speedups[k]:.2f}x one (median of per-round ratios)"
        )
    write_result(
        "scale_out",
        {
            "partitions": args.partitions,
            "events": args.events,
            "rows": rows,
            "median_items_per_s": {str(k): v for k, v in medians.items()},
            "median_speedup": {str(k): v for k, v in speedups.items()},
            "baseline_items_per_s": base,
            "target_two_processes": 1.6,
        },
    )


if __name__ == "__main__":
    main()
