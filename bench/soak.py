"""Soak: the recommender under a sustained request rate while the encoder ingests updates.

Reports, per window: requests, errors, p50/p99 latency, and the recommender's resident memory; then the
error rate, the p99 spread across windows and the memory slope (MB per minute, least squares).
Issue 8 asks for ≥ 10 minutes with error rate 0, p99 stable and memory flat:

    .venv/bin/vitrine bench soak -- --minutes 10 --qps 200 --update-rate 100
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
from _common import ensure_model, percentiles, write_result

from vitrine.api.client import RecommenderClient
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stack import LocalStack
from vitrine.stream.publisher import CatalogPublisher


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def run_soak(
    model_dir: Path, minutes: float, qps: float, update_rate: float, clients: int, window_s: float
) -> dict:
    products = list(generate(SyntheticConfig(n_products=3000, n_sessions=10, n_baskets=10, seed=9)).products)
    work = Path(tempfile.mkdtemp(prefix="vitrine-soak-"))
    stack = LocalStack(work, model_dir.resolve())
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    windows: list[dict] = []
    try:
        stack.start_broker()
        stack.start_encoder()
        recommender = stack.start_recommender()
        with CatalogPublisher.connect(stack.kafka, stack.topics.products) as publisher:
            for p in products:
                publisher.upsert(p)
        ids = [p.product_id for p in products if p.availability.purchasable]
        # the load starts once every product is searchable (partitions are indexed in parallel, so
        # the last one published being there says nothing about the others)
        with RecommenderClient(recommender.grpc_target) as probe:
            deadline = time.monotonic() + 120
            for product_id in ids:
                while True:
                    try:
                        probe.similar(product_id, limit=1)
                        break
                    except grpc.RpcError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)

        def updates() -> None:
            publisher = CatalogPublisher.connect(stack.kafka, stack.topics.products)
            i, next_at = 0, time.perf_counter()
            while not stop.is_set():
                p = products[i % len(products)]
                publisher.upsert(replace(p, title=f"{p.title} u{i}"))
                i += 1
                next_at += 1 / update_rate
                time.sleep(max(0.0, next_at - time.perf_counter()))
                if i % 100 == 0:
                    publisher.flush()
            publisher.close()

        def client_loop(seed: int) -> None:
            rng = random.Random(seed)
            interval = clients / qps
            next_at = time.perf_counter()
            with RecommenderClient(recommender.grpc_target, timeout_s=2) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        client.similar(rng.choice(ids), limit=10)
                        with lock:
                            latencies.append(time.perf_counter() - started)
                    except grpc.RpcError as e:
                        with lock:
                            errors[e.code().name] = errors.get(e.code().name, 0) + 1
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.perf_counter()))

        threads = [threading.Thread(target=updates, daemon=True)]
        threads += [threading.Thread(target=client_loop, args=(s,), daemon=True) for s in range(clients)]
        for t in threads:
            t.start()
        started = time.monotonic()
        pid = recommender.process.pid
        while time.monotonic() - started < minutes * 60:
            time.sleep(window_s)
            with lock:
                window, latencies[:] = list(latencies), []
                errs = sum(errors.values())
            stats = (
                percentiles(window) if window else {"p50_ms": float("nan"), "p99_ms": float("nan"), "n": 0}
            )
            row = {
                "t_s": round(time.monotonic() - started, 1),
                "requests": stats["n"],
                "errors_total": errs,
                "p50_ms": stats["p50_ms"],
                "p99_ms": stats["p99_ms"],
                "rss_mb": rss_mb(pid),
            }
            windows.append(row)
            print(
                f"t={row['t_s']:6.0f}s  requests {row['requests']:6d}  errors {errs}  "
                f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  rss {row['rss_mb']:7.1f} MB",
                flush=True,
            )
        stop.set()
        for t in threads:
            t.join(10)
        encoder_alive = all(s.alive() for s in stack.services)
    finally:
        stop.set()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    t_min = np.array([w["t_s"] for w in windows]) / 60
    rss = np.array([w["rss_mb"] for w in windows])
    # ignore the first window: the process is still warming its caches
    slope = float(np.polyfit(t_min[1:], rss[1:], 1)[0]) if len(windows) > 2 else float("nan")
    p99s = np.array([w["p99_ms"] for w in windows])
    total = sum(w["requests"] for w in windows)
    return {
        "minutes": minutes,
        "qps_target": qps,
        "update_rate": update_rate,
        "clients": clients,
        "requests": total,
        "errors": errors,
        "error_rate": sum(errors.values()) / max(1, total + sum(errors.values())),
        "p99_ms_median_window": float(np.median(p99s)),
        "p99_ms_max_window": float(np.max(p99s)),
        "rss_mb_start": float(rss[0]),
        "rss_mb_end": float(rss[-1]),
        "rss_slope_mb_per_min": slope,
        "services_alive_at_end": encoder_alive,
        "windows": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--qps", type=float, default=200.0)
    parser.add_argument("--update-rate", type=float, default=100.0, help="catalogue updates per second")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per reported window")
    args = parser.parse_args()
    result = run_soak(
        ensure_model(args.model), args.minutes, args.qps, args.update_rate, args.clients, args.window
    )
    print(
        f"\n{result['requests']} requests, error rate {result['error_rate']:.4f}, "
        f"p99 per window median {result['p99_ms_median_window']:.2f} ms / max {result['p99_ms_max_window']:.2f} ms, "
        f"memory {result['rss_mb_start']:.0f} → {result['rss_mb_end']:.0f} MB "
        f"(slope {result['rss_slope_mb_per_min']:+.2f} MB/min)"
    )
    write_result("soak", result)


if __name__ == "__main__":
    main()
