"""The feedback service's throughput (issue 16): interactions per second per core, end to end (Kafka
in, attribution, state changelog, results and offsets in one transaction per batch), on simulated A/B
traffic with a known lift; then the experiment report and its plot from what the service wrote.

    .venv/bin/vitrine bench feedback -- --units 20000 --days 14 --lift 0.1

The service runs as its own process (`python -m vitrine_services.feedback`), as deployed; its CPU time
is read from /proc, so the rate is per core-second of the service (the broker's own CPU not counted).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import write_result
from kafka.errors import KafkaError

from vitrine.feedback.interactions import Interaction, InteractionType, ShownList
from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.feedback.results import ReportConfig, experiment_report, plot_rates, read_results
from vitrine.feedback.topics import ensure_feedback_topics
from vitrine.serving.results import Task
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.kafka import KafkaSettings, group_progress, make_producer

REPO = Path(__file__).resolve().parents[1]


def traffic(units: int, days: int, lift: float, seed: int) -> list[Interaction]:
    """A/B traffic: units with their own CTR (Beta), lists of 8, clicks, carts and purchases, in time order."""
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    events: list[tuple[datetime, int, Interaction]] = []
    n = 0
    for u in range(units):
        unit = f"user-{u:07d}"
        variant = "treatment" if rng.random() < 0.5 else "control"
        ctr = rng.betavariate(1.0, 19.0) * (1 + lift if variant == "treatment" else 1)
        first = rng.randrange(days)
        for day in range(first, days):
            if day > first and rng.random() > 0.5:
                continue
            for _ in range(rng.randint(1, 5)):
                at = t0 + timedelta(days=day, seconds=rng.randrange(86_000))
                rec = f"r{n:09d}"
                n += 1
                shown = tuple(f"p{rng.randrange(5000):05d}" for _ in range(8))
                events.append(
                    (
                        at,
                        n,
                        Interaction(
                            rec,
                            unit,
                            InteractionType.IMPRESSION,
                            at,
                            recommendation_id=rec,
                            placement="pdp-similar",
                            shown=ShownList(shown, "bench", variant, "control", variant, Task.SIMILAR),
                        ),
                    )
                )
                if rng.random() < min(1.0, ctr):
                    item = rng.choice(shown)
                    click_at = at + timedelta(seconds=rng.randint(2, 120))
                    events.append(
                        (click_at, n, Interaction(f"c{n}", unit, InteractionType.CLICK, click_at, item, rec))
                    )
                    if rng.random() < 0.3:
                        cart_at = click_at + timedelta(seconds=30)
                        events.append(
                            (
                                cart_at,
                                n,
                                Interaction(f"a{n}", unit, InteractionType.ADD_TO_CART, cart_at, item, rec),
                            )
                        )
                        if rng.random() < 0.5:
                            buy_at = cart_at + timedelta(seconds=60)
                            value = round(math.exp(rng.gauss(3.5, 0.6)), 2)
                            events.append(
                                (
                                    buy_at,
                                    n,
                                    Interaction(
                                        f"b{n}",
                                        unit,
                                        InteractionType.PURCHASE,
                                        buy_at,
                                        item,
                                        rec,
                                        value=value,
                                        currency="EUR",
                                        quantity=1,
                                    ),
                                )
                            )
                if rng.random() < 0.5:  # an organic page view
                    view_at = at + timedelta(seconds=1)
                    events.append(
                        (view_at, n, Interaction(f"v{n}", unit, InteractionType.CLICK, view_at, shown[0]))
                    )
    events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in events]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lift", type=float, default=0.1)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "experiment_ctr.png")
    args = parser.parse_args()

    print("generating traffic...", flush=True)
    events = traffic(args.units, args.days, args.lift, args.seed)
    print(f"{len(events):,} interactions", flush=True)
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-feedback-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port(), heap="1g"))
    broker.start()
    service = None
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = FeedbackTopics()
        ensure_feedback_topics(kafka, topics, args.partitions)
        producer = make_producer(
            kafka, linger_ms=50, batch_size=512 * 1024, max_in_flight_requests_per_connection=5
        )
        for e in events:
            producer.send(topics.interactions, key=e.key.encode(), value=e.to_bytes())
        producer.flush()
        producer.close()
        print("published; starting the feedback service", flush=True)
        log = (work / "feedback.log").open("wb")
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vitrine_services.feedback",
                "--bootstrap-servers",
                broker.bootstrap_servers,
                "--metrics-port",
                "0",
                "--results-interval-s",
                "0.5",
                "--max-batch",
                str(args.max_batch),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        group = "vitrine-feedback"
        first: tuple[float, float, int] | None = None
        while True:
            try:
                progress = group_progress(kafka, group, topics.interactions)
            except KafkaError:  # the group (or its coordinator) does not exist yet
                time.sleep(0.5)
                continue
            done = sum(c for c, _ in progress.values())
            total = sum(e for _, e in progress.values())
            if first is None and done > 0:
                first = (time.perf_counter(), cpu_seconds(service.pid), done)
            if done >= total:
                end = (time.perf_counter(), cpu_seconds(service.pid), done)
                break
            if service.poll() is not None:
                raise SystemExit(
                    f"the feedback service exited: {(work / 'feedback.log').read_text()[-3000:]}"
                )
            time.sleep(0.25)
        assert first is not None
        records = end[2] - first[2]
        wall, cpu = end[0] - first[0], end[1] - first[1]
        print(
            f"{records:,} interactions in {wall:.1f}s wall, {cpu:.1f}s CPU of the service: "
            f"{records / cpu:,.0f} interactions/s per core ({records / wall:,.0f}/s wall)",
            flush=True,
        )
        time.sleep(1.0)
        results = read_results(kafka, topics.results)
        config = ReportConfig()
        report = experiment_report(results, config)
        plot_rates(results, args.plot, "ctr", config)
        print(json.dumps(report["experiments"][0]["comparisons"][0], indent=2))
        write_result(
            "feedback",
            {
                "interactions": len(events),
                "units": args.units,
                "days": args.days,
                "true_lift": args.lift,
                "partitions": args.partitions,
                "max_batch": args.max_batch,
                "measured_records": records,
                "wall_s": wall,
                "service_cpu_s": cpu,
                "interactions_per_core_s": records / cpu,
                "interactions_per_wall_s": records / wall,
                "report": report,
                "plot": str(args.plot.relative_to(REPO))
                if args.plot.is_relative_to(REPO)
                else str(args.plot),
                "load_average": os.getloadavg(),
            },
        )
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
