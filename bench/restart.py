"""Recommender restart time at scale (embedded mode): a vectors topic of N items, a replica started
cold (its shard built from offset 0), stopped (SIGTERM) and started again (the shard reused, the topic
resumed from the offsets it had applied), then SIGKILLed and started again (the same, after a crash:
Qdrant Edge replays its write-ahead log). Time to SERVING each time, in one run.

    .venv/bin/vitrine bench restart -- --items 1000000 --model artifacts/models/synthetic-similar

The vectors are random unit vectors of the model's size written straight to the topic as the encoder
writes them (`encode_vector_change`), so the benchmark measures the replica, not the encoder. Writes
bench/results/restart.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ensure_model, write_result

from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.model.card import read_card
from vitrine.stack import LocalStack, ServiceProcess, wait_grpc_serving
from vitrine.stream.broker import free_port
from vitrine.stream.kafka import make_producer
from vitrine.stream.records import encode_vector_change


def fill_topic(stack: LocalStack, items: int, dim: int, model_version: str) -> float:
    producer = make_producer(stack.kafka, linger_ms=50, batch_size=1024 * 1024, acks=1)
    rng = np.random.default_rng(1)
    started = time.monotonic()
    for start in range(0, items, 10_000):
        vectors = rng.normal(size=(min(10_000, items - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i, v in enumerate(vectors):
            pid = f"p{start + i:07d}"
            change = IndexedItem(pid, 1, v, ItemPayload(title=f"item {start + i}", cluster=i % 50))
            producer.send(
                stack.topics.vectors, key=pid.encode(), value=encode_vector_change(change, model_version)
            )
        if start % 100_000 == 0:
            print(f"  {start:,} / {items:,} vectors written", flush=True)
    producer.flush()
    producer.close()
    return time.monotonic() - started


def start_replica(
    stack: LocalStack, name: str, index_path: Path, timeout_s: float
) -> tuple[ServiceProcess, float]:
    metrics_port, grpc_port = free_port(), free_port()
    # measure, do not give up: on a loaded machine a rebuild can be slower than the service's floor
    config = stack.write_recommender_config(name, {"startup_min_records_per_s": 20})
    args = [
        "--config",
        str(config),
        "--model",
        str(stack.model_dir),
        "--bootstrap-servers",
        stack.kafka.bootstrap_servers,
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        "--index-path",
        str(index_path),
    ]
    started = time.monotonic()
    service = stack._spawn(name, "recommender", args, metrics_port, grpc_port)
    wait_grpc_serving(service, timeout_s=timeout_s)
    return service, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/synthetic-similar"))
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()
    model_dir = ensure_model(args.model)
    card = read_card(model_dir)
    dim = card.dim
    with tempfile.TemporaryDirectory(prefix="vitrine-restart-") as tmp:
        stack = LocalStack(Path(tmp), model_dir, partitions=args.partitions)
        try:
            stack.start_broker()
            print(f"writing {args.items:,} vectors (dim {dim}) to {stack.topics.vectors}", flush=True)
            fill_s = fill_topic(stack, args.items, dim, card.model_version)
            index_path = Path(tmp) / "replica-index"
            runs = {}
            replica, runs["cold_s"] = start_replica(stack, "cold", index_path, args.timeout)
            print(f"cold start (rebuild from offset 0): {runs['cold_s']:.1f} s", flush=True)
            replica.terminate(120)
            replica, runs["warm_s"] = start_replica(stack, "warm", index_path, args.timeout)
            print(f"restart after SIGTERM (shard reused, resumed): {runs['warm_s']:.1f} s", flush=True)
            replica.kill()
            replica, runs["after_kill_s"] = start_replica(stack, "after-kill", index_path, args.timeout)
            print(f"restart after SIGKILL (WAL replayed, resumed): {runs['after_kill_s']:.1f} s", flush=True)
            reused = "reused: resuming" in replica.log_tail(400)
            replica.terminate(120)
        finally:
            stack.stop()
    write_result(
        "restart",
        {
            "items": args.items,
            "dim": dim,
            "partitions": args.partitions,
            "fill_topic_s": round(fill_s, 1),
            **{k: round(v, 1) for k, v in runs.items()},
            "speedup_warm_vs_cold": round(runs["cold_s"] / runs["warm_s"], 1),
            "speedup_after_kill_vs_cold": round(runs["cold_s"] / runs["after_kill_s"], 1),
            "reused_after_kill": reused,
            "load_average": list(os.getloadavg()),
        },
    )


if __name__ == "__main__":
    main()
