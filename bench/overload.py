"""The recommender past saturation: ghz offers far more concurrent calls than the server admits; the
admitted calls' latency must stay bounded (by the queue, not by the offered load), the excess must be
refused at once with RESOURCE_EXHAUSTED, and the process must stay healthy (health checks answered,
memory flat).

    .venv/bin/vitrine bench overload -- --items 50000 --workers 4 --queued 8 --duration 15

The server is the library's gRPC server (the same servicer and task code as the service) over a Qdrant
Edge shard of random unit vectors, in its own process; ghz (`make ghz`) runs closed loop at the
admission bound (workers + queued: saturated) and at 4x and 16x that. A health probe runs alongside.
Writes bench/results/overload.json. The control: the same load with the queue bound lifted
(`--queued 100000 --base 12 --name overload_unbounded`), where admitted latency grows with the offered load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import write_result

REPO = Path(__file__).resolve().parents[1]


def serve(args: argparse.Namespace) -> None:
    """The server process: build the shard, serve, print PORT, stop on SIGTERM."""
    import numpy as np

    from vitrine.api.overload import OverloadLimits
    from vitrine.api.server import create_grpc_server
    from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
    from vitrine.index.port import IndexedItem, ItemPayload
    from vitrine.obs.metrics import RecommenderMetrics
    from vitrine.serving.experiments import ExperimentRouter, Variant
    from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        index = EdgeIndex(EdgeIndexConfig(Path(tmp) / "shard", args.dim, wal=False))
        for start in range(0, args.items, 10_000):
            v = rng.normal(size=(min(10_000, args.items - start), args.dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            index.apply(
                [
                    IndexedItem(f"p{start + i}", 1, x, ItemPayload(title=f"item {start + i}", cluster=i % 50))
                    for i, x in enumerate(v)
                ]
            )
        index.optimize()
        served = ServedModel("default", "bench", "similar", index)
        router = ExperimentRouter([Variant("default", similar="default", inspire="default")])
        registry = ModelRegistry(ServingSnapshot({"default": served}, router))
        limits = OverloadLimits(args.workers, args.queued)
        server = create_grpc_server(
            registry, RecommenderMetrics(), "127.0.0.1:0", args.workers, overload=limits
        )
        server.start()
        server.set_serving(True)
        print(f"PORT {server.port}", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        while not stopped.wait(0.5):
            pass
        server.stop(1)
        index.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ghz_run(ghz: str, target: str, concurrency: int, duration_s: float, items: int) -> dict[str, Any]:
    from recommender import protoset

    with tempfile.TemporaryDirectory() as tmp:
        descriptors = protoset(Path(tmp) / "recommender.protoset")
        data = Path(tmp) / "data.json"
        data.write_text(
            json.dumps([{"productId": f"p{(i * 7919) % items}", "limit": 50} for i in range(2000)])
        )
        out = Path(tmp) / "out.json"
        cmd = [
            ghz,
            "--insecure",
            f"--protoset={descriptors}",
            "--call=vitrine.v1.Recommender.Similar",
            f"--data-file={data}",
            f"--concurrency={concurrency}",
            f"--connections={min(concurrency, 64)}",
            f"--duration={duration_s:g}s",
            "--timeout=30s",
            "--format=json",
            f"--output={out}",
            target,
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        report = json.loads(out.read_text())
    details = report.get("details") or []
    ok = sorted(d["latency"] / 1e6 for d in details if d.get("status") == "OK")
    refused = sorted(d["latency"] / 1e6 for d in details if d.get("status") == "ResourceExhausted")
    other = sum(1 for d in details if d.get("status") not in ("OK", "ResourceExhausted"))

    def pct(values: list[float], p: float) -> float | None:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else None

    return {
        "concurrency": concurrency,
        "calls": len(details),
        "ok": len(ok),
        "resource_exhausted": len(refused),
        "other": other,
        "ok_rps": len(ok) / duration_s,
        "ok_p50_ms": pct(ok, 50),
        "ok_p99_ms": pct(ok, 99),
        "ok_max_ms": ok[-1] if ok else None,
        "refused_p50_ms": pct(refused, 50),
        "refused_p99_ms": pct(refused, 99),
        "statuses": report.get("statusCodeDistribution", {}),
    }


def health_probe(target: str, stop: threading.Event, out: dict[str, Any]) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    latencies: list[float] = []
    failures: dict[str, int] = {}
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not stop.wait(0.25):
            started = time.perf_counter()
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                latencies.append((time.perf_counter() - started) * 1000)
            except grpc.RpcError as e:
                failures[e.code().name] = failures.get(e.code().name, 0) + 1
    out.update(
        checks=len(latencies) + sum(failures.values()),
        failures=failures,
        p50_ms=statistics.median(latencies) if latencies else None,
        max_ms=max(latencies) if latencies else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queued", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--factors", default="1,4,16", help="offered concurrency as multiples of workers + queued"
    )
    parser.add_argument(
        "--base",
        type=int,
        default=0,
        help="what the factors multiply (default workers + queued; a control run sets it)",
    )
    parser.add_argument("--ghz", default=None)
    parser.add_argument(
        "--name",
        default="overload",
        help="result file (bench/results/NAME.json); e.g. a control run without a queue bound",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    from recommender import find_ghz

    ghz = find_ghz(args.ghz)
    if ghz is None:
        raise SystemExit("ghz not found: `make ghz` installs it")
    cmd = [sys.executable, __file__, "--serve", *sys.argv[1:]]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    target = f"127.0.0.1:{int(line.split()[1])}"
    admitted = args.base or args.workers + args.queued
    runs = []
    rss_before = rss_mb(server.pid)
    try:
        for factor in (int(f) for f in args.factors.split(",")):
            stop = threading.Event()
            health: dict[str, Any] = {}
            probe = threading.Thread(target=health_probe, args=(target, stop, health))
            probe.start()
            row = ghz_run(ghz, target, factor * admitted, args.duration, args.items)
            stop.set()
            probe.join()
            row.update(
                factor=factor, health=health, rss_mb=round(rss_mb(server.pid), 1), alive=server.poll() is None
            )
            runs.append(row)
            print(
                f"x{factor:>2} ({row['concurrency']:>3} concurrent): ok {row['ok']:>6} ({row['ok_rps']:.0f}/s) "
                f"p50 {row['ok_p50_ms'] or 0:.1f} p99 {row['ok_p99_ms'] or 0:.1f} ms; refused {row['resource_exhausted']:>6} "
                f"p50 {row['refused_p50_ms'] or 0:.2f} ms; other {row['other']}; health {health.get('failures')} "
                f"max {health.get('max_ms') or 0:.1f} ms; RSS {row['rss_mb']} MB"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    base = runs[0]
    write_result(
        args.name,
        {
            "items": args.items,
            "workers": args.workers,
            "queued": args.queued,
            "duration_s": args.duration,
            "load_average": list(os.getloadavg()),
            "rss_mb_before": round(rss_before, 1),
            "runs": runs,
            "ok_p99_ratio_at_max_vs_saturation": (
                runs[-1]["ok_p99_ms"] / base["ok_p99_ms"]
                if base["ok_p99_ms"] and runs[-1]["ok_p99_ms"]
                else None
            ),
        },
    )


if __name__ == "__main__":
    main()
