"""The cost of recording impressions on the serving path (issue 16): the recommender's latency with
impression recording on and off, side by side in one run: two server processes over the same shard,
loaded by the same closed-loop clients in alternating 2 s slices (A B B A ..., 24 of each), so that the
machine's drift and noise hit both arms alike; p99 of the pooled latencies per arm, with a bootstrap
interval over slice pairs. Similar through gRPC.

    .venv/bin/vitrine bench impressions -- --items 20000
    .venv/bin/vitrine bench impressions -- --items 20000 --aa   # control: neither server records

Target: p99 with recording <= 1.05 x p99 without. Needs the synthetic models (as bench/recommender.py)
and starts its own Kafka broker (the recorded lists really go to a topic, and are counted back).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import ensure_model, percentiles, write_result
from _loadgen import run_interleaved, run_load, slice_target
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process and of its children (the impression sender), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.is_file() else []
    return _cpu_of(pid), sum(_cpu_of(k) for k in kids)


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(
    slices: list[list[float]], slice_s: float, cpu_s: dict[str, float], sender_s: float, rng: Any
) -> dict[str, Any]:
    """Off (target 0) against on (target 1) from interleaved slices: pooled percentiles per arm, and a
    bootstrap over pairs of adjacent slices (one of each arm) for the p99 ratio's uncertainty."""
    arms = {"off": 0, "on": 1}
    ok = {
        a: [[x for x in sl if x >= 0] for k, sl in enumerate(slices) if slice_target(k) == t]
        for a, t in arms.items()
    }
    pooled = {a: np.concatenate([np.asarray(x) for x in v]) for a, v in ok.items()}
    p = {a: percentiles(list(v)) for a, v in pooled.items()}
    seconds = {a: slice_s * len(v) for a, v in ok.items()}
    rps = {a: len(pooled[a]) / seconds[a] for a in arms}
    pairs = min(len(ok["off"]), len(ok["on"]))
    ratios = []
    for _ in range(1000):
        pick = rng.integers(0, pairs, pairs)
        p99 = {a: np.percentile(np.concatenate([ok[a][i] for i in pick]), 99) for a in arms}
        ratios.append(p99["on"] / p99["off"])
    return {
        "p50_ms": {a: p[a]["p50_ms"] for a in arms},
        "p99_ms": {a: p[a]["p99_ms"] for a in arms},
        "requests": {a: len(pooled[a]) for a in arms},
        "errors": {
            a: sum(1 for k, sl in enumerate(slices) if slice_target(k) == t for x in sl if x < 0)
            for a, t in arms.items()
        },
        "rps": rps,
        "p99_ratio": p["on"]["p99_ms"] / p["off"]["p99_ms"],
        "p99_ratio_ci": [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))],
        "p50_ratio": p["on"]["p50_ms"] / p["off"]["p50_ms"],
        "rps_ratio": rps["on"] / rps["off"],
        "cpu_ms_per_request": {a: 1000 * cpu_s[a] / max(len(pooled[a]), 1) for a in arms},
        "sender_cpu_ms_per_request": 1000 * sender_s / max(len(pooled["on"]), 1),
    }


def gc_summary(server_output: str) -> dict[str, dict[str, float]]:
    """Per generation: how many collections the server ran and their pauses (count, total, max ms)."""
    lines = [line for line in server_output.splitlines() if line.startswith("GC ")]
    if not lines:
        return {}
    pauses: dict[str, list[float]] = json.loads(lines[-1][3:])
    return {
        g: {"count": len(p), "total_ms": round(sum(p), 1), "max_ms": max(p, default=0.0)}
        for g, p in pauses.items()
    }


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
        "--complementary-model",
        type=Path,
        default=None,
        help="default: the similar model (only Similar is measured; the synthetic map stands in)",
    )
    parser.add_argument("--cache", type=Path, default=Path("artifacts/bench/recommender"))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument(
        "--slices", type=int, default=48, help="alternating slices per client count (half for each arm)"
    )
    parser.add_argument("--slice", type=float, default=2.0, help="seconds per slice")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--aa",
        action="store_true",
        help="control run: the 'on' server records nothing either (both arms should measure alike)",
    )
    parser.add_argument(
        "--prewarm",
        type=float,
        default=10.0,
        help="seconds of load on each server before the rounds (JIT of the fresh broker, caches)",
    )
    args = parser.parse_args()
    args.similar_model = ensure_model(args.similar_model).resolve()
    args.complementary_model = (args.complementary_model or args.similar_model).resolve()
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
            on, on_target = start(copy, args, "" if args.aa else broker.bootstrap_servers)
        except BaseException:
            stop(off)
            raise
        summary: dict[str, dict[str, Any]] = {}
        try:
            for target in (off_target, on_target):  # a fresh broker's produce path is not yet compiled
                run_load(target, "Similar", payloads, 2, args.prewarm, warmup_s=0)
            for c in (int(x) for x in args.clients.split(",")):
                servers = {"off": off, "on": on}
                before = {arm: cpu_seconds(p.pid) for arm, p in servers.items()}
                slices = run_interleaved(
                    [off_target, on_target], "Similar", payloads, c, args.slice, args.slices
                )
                after = {arm: cpu_seconds(p.pid) for arm, p in servers.items()}
                cpu = {arm: sum(after[arm]) - sum(before[arm]) for arm in servers}
                sender = after["on"][1] - before["on"][1]
                summary[str(c)] = compare(slices, args.slice, cpu, sender, np.random.default_rng(c))
                m = summary[str(c)]
                print(
                    f"clients={c}: p99 on/off {m['p99_ms']['on']:.2f}/{m['p99_ms']['off']:.2f} ms = "
                    f"{m['p99_ratio']:.3f}x (95 % bootstrap over slice pairs {m['p99_ratio_ci'][0]:.3f}-"
                    f"{m['p99_ratio_ci'][1]:.3f}); p50 {m['p50_ratio']:.3f}x; throughput {m['rps_ratio']:.3f}x; "
                    f"server CPU per request {m['cpu_ms_per_request']['on']:.2f} (sender "
                    f"{m['sender_cpu_ms_per_request']:.2f}) / {m['cpu_ms_per_request']['off']:.2f} ms "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        finally:
            off_out = stop(off)
            recorded_line = stop(on)
        gc_pauses = {"off": gc_summary(off_out), "on": gc_summary(recorded_line)}
        for label, by_generation in gc_pauses.items():
            print(f"garbage collections, {label}: {json.dumps(by_generation)}")
        recorded = [line for line in recorded_line.splitlines() if line.startswith("RECORDED")]
        write_result(
            "impressions_aa" if args.aa else "impressions",
            {
                "items": args.items,
                "slices": args.slices,
                "slice_s": args.slice,
                "summary": summary,
                "gc_pauses": gc_pauses,
                "recorded": recorded[0].split()[1] if recorded else None,
                "target": "p99 on <= 1.05 x p99 off",
                "control_aa": args.aa,
                "load_average": os.getloadavg(),
            },
        )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
