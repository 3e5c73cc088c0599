"""The cost of recording impressions on the serving path (issue 16): the recommender's latency with
impression recording on and off, side by side in one run (two server processes over the same shard,
measured in alternating rounds so that machine load hits both alike), Similar through gRPC.

    .venv/bin/vitrine bench impressions -- --items 20000 --rounds 4 --duration 8

Target: p99 with recording <= 1.05 x p99 without. Needs the synthetic models (as bench/recommender.py)
and starts its own Kafka broker (the recorded lists really go to a topic, and are counted back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from _common import percentiles, write_result
from _loadgen import run_load
from _recommender_world import catalog, ensure_shard
from recommender import start_server, workload

from vitrine.data.synthetic import COMPLEMENTARY_MAP
from vitrine.feedback.pipeline import FeedbackTopics
from vitrine.feedback.topics import ensure_feedback_topics
from vitrine.model.inference import load_inference_model
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.kafka import KafkaSettings

REPO = Path(__file__).resolve().parents[1]


def start(cache: Path, args: argparse.Namespace, bootstrap: str) -> tuple[subprocess.Popen[str], str]:
    return start_server(cache, args, ["--record-impressions", bootstrap] if bootstrap else [])


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the impression sender), from /proc."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--similar-model", type=Path, default=Path("artifacts/models/synthetic-similar"))
    parser.add_argument(
        "--complementary-model", type=Path, default=Path("artifacts/models/synthetic-complementary")
    )
    parser.add_argument("--cache", type=Path, default=Path("artifacts/bench/recommender"))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    for name in ("similar_model", "complementary_model"):
        setattr(args, name, getattr(args, name).resolve())
    cache = (args.cache / str(args.items)).resolve()
    leaf, in_stock = catalog(cache, args.items)
    models = {"similar": load_inference_model(args.similar_model, threads=1)}
    models["complementary"] = load_inference_model(args.complementary_model, threads=1)
    for name, m in models.items():
        ensure_shard(cache, name, m, args.items)
    # only Similar is measured; the synthetic catalogue's own map stands in for a complementary model's
    cmap = models["complementary"].complementary_map or {k: list(v) for k, v in COMPLEMENTARY_MAP.items()}
    requests = workload(leaf, in_stock, cmap, args.queries)
    payloads = []
    for i, r in enumerate(requests["Similar"]):
        r.unit_key = f"user-{i % 500}"  # impressions need a unit key to be recorded for an experiment
        payloads.append(r.SerializeToString())

    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-impressions-"))
    broker = LocalKafkaBroker(BrokerConfig(work / "kafka", free_port(), free_port()))
    broker.start()
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        ensure_feedback_topics(kafka, FeedbackTopics(), partitions=2)
        # two servers cannot open one Edge shard (its WAL is locked): the second gets a copy
        copy = work / "cache"
        shutil.copytree(cache, copy)
        off, off_target = start(cache, args, "")
        try:
            on, on_target = start(copy, args, broker.bootstrap_servers)
        except BaseException:
            stop(off)
            raise
        rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
        try:
            for c in (int(x) for x in args.clients.split(",")):
                rows[str(c)] = {"off": [], "on": []}
                for r in range(args.rounds):
                    order = (
                        (("off", off_target), ("on", on_target))
                        if r % 2 == 0
                        else (("on", on_target), ("off", off_target))
                    )
                    for label, target in order:
                        pid = (off if label == "off" else on).pid
                        cpu_before = cpu_seconds(pid)
                        load = run_load(target, "Similar", payloads, c, args.duration, warmup_s=args.warmup)
                        cpu = cpu_seconds(pid) - cpu_before  # warm-up included: per request below
                        requests_done = load.rps * (args.duration + args.warmup)
                        row = {
                            **percentiles(load.latencies_s),
                            "rps": load.rps,
                            "errors": load.errors,
                            "server_cpu_ms_per_request": 1000 * cpu / max(requests_done, 1),
                        }
                        rows[str(c)][label].append(row)
                        print(
                            f"clients={c} round={r} {label:<3} p50 {row['p50_ms']:.2f} p99 {row['p99_ms']:.2f} ms "
                            f"{row['rps']:.0f} req/s, server CPU {row['server_cpu_ms_per_request']:.2f} ms/request "
                            f"(load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
        finally:
            stop(off)
            recorded_line = stop(on)
        summary = {}
        for c, by in rows.items():
            p99 = {k: statistics.median(x["p99_ms"] for x in v) for k, v in by.items()}
            p50 = {k: statistics.median(x["p50_ms"] for x in v) for k, v in by.items()}
            rps = {k: statistics.median(x["rps"] for x in v) for k, v in by.items()}
            cpu = {k: statistics.median(x["server_cpu_ms_per_request"] for x in v) for k, v in by.items()}
            summary[c] = {
                "p50_ms": p50,
                "p99_ms": p99,
                "rps": rps,
                "p99_ratio": p99["on"] / p99["off"],
                "p50_ratio": p50["on"] / p50["off"],
                "rps_ratio": rps["on"] / rps["off"],
                "server_cpu_ms_per_request": cpu,
                "cpu_ratio": cpu["on"] / cpu["off"],
            }
            print(
                f"clients={c}: p99 on/off {p99['on']:.2f}/{p99['off']:.2f} ms = {summary[c]['p99_ratio']:.3f}x; "
                f"p50 {summary[c]['p50_ratio']:.3f}x; throughput {summary[c]['rps_ratio']:.3f}x; "
                f"server CPU per request (incl. the sender process) {summary[c]['cpu_ratio']:.3f}x"
            )
        recorded = [line for line in recorded_line.splitlines() if line.startswith("RECORDED")]
        write_result(
            "impressions",
            {
                "items": args.items,
                "rounds": args.rounds,
                "duration_s": args.duration,
                "summary": summary,
                "rows": rows,
                "recorded": recorded[0].split()[1] if recorded else None,
                "target": "p99 on <= 1.05 x p99 off",
                "load_average": os.getloadavg(),
            },
        )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
