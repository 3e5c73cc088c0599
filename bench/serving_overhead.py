"""Serving overhead (issue 19): what a Similar request costs around the index, this tree's server
against an older commit's, side by side in one run, in interleaved rounds.

    git worktree add --detach /tmp/vitrine-base 1f8ae20 && .venv/bin/python /tmp/vitrine-base/protos/generate.py
    .venv/bin/vitrine bench serving_overhead -- --items 100000 --baseline /tmp/vitrine-base
    .venv/bin/vitrine bench serving_overhead -- --items 1000000 --baseline /tmp/vitrine-base --rounds 3

Servers (each bench/_recommender_server.py over the same cached shard, 16 handler threads):
  before     the library of `--baseline` (PYTHONPATH=<baseline>/libs), one process;
  after      this tree's library, one process;
  after t0   this tree's library with Qdrant Edge's own search pool (index_search_threads=0);
  after x2   this tree's library, two processes sharing one port (SO_REUSEPORT): process per core.
Every round runs, for each server in turn, ghz closed loop at 1 and at 4 clients (`--duration` s
each after `--warmup` s), and the in-process ANN time of the same requests (the Qdrant Edge calls
of each request, timed around the calls in this process, single thread, while the servers idle).
Figures are the medians over the rounds; ratios are taken within a round (served p99 / that
round's ANN p99) before the median, so that a burst of load on the shared machine moves both sides.

Per-request CPU outside the index = (CPU seconds of the server processes during a run) / requests
answered - mean ANN CPU per request (the calling thread's CPU time inside the Edge calls of each
request, in this process, the shard searching in the calling thread; CPU time, unlike wall time,
does not grow with the load of a shared machine). ghz runs on the same cores: its own CPU per request is
recorded too (it competes with the server in closed loop; throughput is the machine's, not the
server's alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, write_result
from _profile_summary import summarise
from _recommender_world import catalog, ensure_shard, open_shard
from google.protobuf.json_format import MessageToDict
from recommender import find_ghz, in_process, protoset, workload

from vitrine.model.inference import load_inference_model

REPO = Path(__file__).resolve().parents[1]


def card_without_defaults(model_dir: Path, out: Path) -> Path:
    """A copy of the model for the baseline library: the same files (linked), the card without the
    feature settings that hold today's defaults, since a setting added after the baseline's commit
    (e.g. `sentence_context`) is refused by its FeatureConfig even at its default value."""
    from vitrine.catalog.features import FeatureConfig

    out.mkdir(exist_ok=True)
    for f in model_dir.iterdir():
        target = out / f.name
        if f.name != "model.json" and not target.exists():
            target.symlink_to(f.resolve())
    card = json.loads((model_dir / "model.json").read_text())
    defaults = FeatureConfig().to_dict()
    card["features"] = {k: v for k, v in card["features"].items() if defaults.get(k, object()) != v}
    (out / "model.json").write_text(json.dumps(card, indent=2))
    return out


@dataclass
class Server:
    """One benchmarked server: `processes` copies of bench/_recommender_server.py on one port."""

    name: str
    libs: Path  # the library it imports
    model: Path  # the model directory it serves (a baseline's: `card_without_defaults`)
    processes: int
    shards: list[str] = field(default_factory=list)  # one shard copy per process
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    port: int = 0

    options: list[str] = field(default_factory=list)  # more flags of the server script

    def start(self, cache: Path, workers: int) -> None:
        env = {**os.environ, "PYTHONPATH": f"{self.libs}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        for shard in self.shards:
            cmd = [
                sys.executable,
                os.environ.get(
                    "SO_SERVER_" + self.name.replace(" ", "_"), str(REPO / "bench" / "_recommender_server.py")
                ),
                f"--cache={cache}",
                f"--similar-model={self.model}",
                f"--workers={workers}",
                f"--port={self.port}",
                f"--similar-shard={shard}",
                *self.options,
            ]
            process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith("PORT "):
                self.stop()
                raise SystemExit(f"{self.name}: the benchmark server did not start: {line!r}")
            self.port = int(line.split()[1])
            self.procs.append(process)

    def cpu_s(self) -> float:
        return sum(process_cpu_s(p.pid) for p in self.procs)

    def memory(self) -> list[dict[str, float]]:
        return [process_memory(p.pid) for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)


def server_layout(name: str) -> tuple[int, list[str]]:
    """Processes and server flags from a server's name: `xN` = N processes on one port, `tN` = N
    search threads per shard, `wN` = N gRPC handler threads (e.g. "after x2 t1")."""
    processes, options = 1, []
    for token in name.split()[1:]:
        kind, value = token[0], int(token[1:])
        if kind == "x":
            processes = value
        elif kind == "t":
            options.append(f"--search-threads={value}")
        elif kind == "w":
            options.append(f"--workers={value}")
        else:
            raise SystemExit(f"unknown server option {token!r} in {name!r} (xN, tN, wN)")
    return processes, options


def copy_shard(cache: Path, name: str, copy: str) -> None:
    source, target = cache / name, cache / copy
    if (target / "done.json").is_file() and (target / "done.json").read_text() == (
        source / "done.json"
    ).read_text():
        return
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread of a process, by thread name with its number dropped: the
    Qdrant Edge search pool (`edge-search-N`), gRPC core's threads, the Python threads (`python`:
    the handler pool and the server's polling thread)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        kind = name.rstrip("0123456789").rstrip("-_") or name
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def process_memory(pid: int) -> dict[str, float]:
    """Resident and proportional set size (MiB): PSS splits pages shared with other processes (the
    shard's memory-mapped files in the page cache, the interpreter) among them."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Private_Dirty"):
            out[key.lower() + "_mib"] = int(rest.split()[0]) / 1024
    return out


class Ghz:
    def __init__(self, path: str, requests: list[Any], folder: Path) -> None:
        self.path = path
        self.descriptors = protoset(folder / "recommender.protoset")
        self.data = folder / "data.json"
        self.data.write_text(json.dumps([MessageToDict(r) for r in requests[:2000]]))
        self.out = folder / "out.json"

    def run(self, server: Server, concurrency: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
        """Closed loop: each client sends its next request when the last one answered. Warm-up first
        (not measured), then the measured run, with the server's and ghz's CPU over it."""
        if warmup_s > 0:
            self._ghz(server.port, concurrency, warmup_s)
        cpu_before = server.cpu_s()
        children_before = _children_cpu_s()
        report = self._ghz(server.port, concurrency, duration_s)
        server_cpu = server.cpu_s() - cpu_before
        ghz_cpu = _children_cpu_s() - children_before
        latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
        statuses = report.get("statusCodeDistribution", {})
        closing = sum(
            n for e, n in (report.get("errorDistribution") or {}).items() if "transport is closing" in e
        )
        answered = statuses.get("OK", 0)
        return {
            "p50_ms": latency.get(50),
            "p99_ms": latency.get(99),
            "rps": report["rps"],
            "n": report["count"],
            "errors": report["count"] - answered - closing,
            "server_cpu_ms_per_request": 1000 * server_cpu / max(1, answered),
            "ghz_cpu_ms_per_request": 1000 * ghz_cpu / max(1, answered),
        }

    def _ghz(self, port: int, concurrency: int, duration_s: float) -> dict[str, Any]:
        cmd = [
            self.path,
            "--insecure",
            f"--protoset={self.descriptors}",
            "--call=vitrine.v1.Recommender.Similar",
            f"--data-file={self.data}",
            f"--concurrency={concurrency}",
            f"--connections={concurrency}",
            f"--duration={duration_s:g}s",
            "--format=json",
            f"--output={self.out}",
            f"127.0.0.1:{port}",
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(self.out.read_text())  # type: ignore[no-any-return]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # ghz runs are waited-for children
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float]:
    return [round(x, 1) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--similar-model", type=Path, default=Path("artifacts/models/synthetic-similar"))
    parser.add_argument("--cache", type=Path, default=Path("artifacts/bench/recommender"))
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a checkout of the commit to compare with"
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--ann-queries", type=int, default=1000, help="in-process ANN requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per ghz run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each run")
    parser.add_argument("--workers", type=int, default=16, help="gRPC handler threads per process")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--servers", default="before,after,after t0,after x2")
    parser.add_argument("--ghz", default=None)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="seconds of ghz at 4 clients per single-process server with py-spy attached and the "
        "CPU of each kind of thread recorded (0 = no profile)",
    )
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    model_dir = args.similar_model.resolve()
    baseline = args.baseline.resolve()
    if not (baseline / "libs" / "vitrine" / "v1").is_dir():
        raise SystemExit(f"{baseline}: no generated protos; run {baseline}/protos/generate.py first")
    cache = (args.cache / str(args.items)).resolve()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    ghz_path = find_ghz(args.ghz)
    if ghz_path is None:
        raise SystemExit("ghz not found: `make ghz` installs the pinned version")

    print(f"== world: {args.items:,} synthetic items, cache {cache}; load average {load_average()}")
    leaf, in_stock = catalog(cache, args.items)
    model = load_inference_model(model_dir, threads=1)
    baseline_model = card_without_defaults(model_dir, model_dir.parent / f"{model_dir.name}-for-baseline")
    build = ensure_shard(cache, "similar", model, args.items)
    requests = workload(leaf, in_stock, {}, args.queries, similar_only=True)["Similar"]

    servers = []
    copies = 0
    for name in args.servers.split(","):
        before = name.startswith("before")
        libs, served = (baseline / "libs", baseline_model) if before else (REPO / "libs", model_dir)
        processes, options = server_layout(name)
        shards = [f"similar-copy{copies + k + 1}" for k in range(processes)]
        copies += processes
        servers.append(Server(name, libs, served, processes, shards, options=options))
    # Qdrant Edge locks a shard's WAL: every process opens its own copy, as embedded-mode replicas
    # each keep their own shard (so a process's memory below is what a replica costs)
    for k in range(1, copies + 1):
        copy_shard(cache, "similar", f"similar-copy{k}")
    shard = open_shard(cache, "similar", model.dim)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ghz = Ghz(ghz_path, requests, Path(tmp))
        try:
            for server in servers:
                server.start(cache, args.workers)
                print(
                    f"   {server.name}: {server.processes} process(es) on port {server.port} ({server.libs})"
                )
            in_process("Similar", shard, model, requests[: args.ann_queries], 1)  # warm the pages
            for k in range(args.rounds):
                row: dict[str, Any] = {"load_average": load_average()}
                ann = in_process("Similar", shard, model, requests[: args.ann_queries], 1)
                row["ann"] = ann["ann"] | {
                    "mean_ms": ann["ann_mean_ms"],
                    "cpu_mean_ms": ann["ann_cpu_mean_ms"],
                }
                for server in servers:
                    for c in concurrency:
                        row[f"{server.name} c={c}"] = ghz.run(server, c, args.duration, args.warmup)
                rounds.append(row)
                print(round_line(k, row, servers, concurrency), flush=True)
            memory = {s.name: s.memory() for s in servers}
            profiles = {
                s.name: profile(s, ghz, args.profile, Path(tmp))
                for s in servers
                if args.profile > 0 and s.processes == 1
            }
        finally:
            for server in servers:
                server.stop()
            shard.close()

    result = {
        "items": args.items,
        "build": build,
        "baseline": str(baseline),
        "baseline_commit": _commit(baseline),
        "commit": _commit(REPO),
        "rounds": rounds,
        "median": medians(rounds, servers, concurrency),
        "memory": memory,
        "profiles": profiles,
        "note": args.note,
        "load_average_end": load_average(),
        "machine": machine(),
    }
    print(summary(result, servers, concurrency))
    write_result(f"serving_overhead_{args.items}", result)


def profile(server: Server, ghz: Ghz, seconds: float, out_dir: Path) -> dict[str, Any]:
    """Where the server's CPU goes at 4 closed-loop clients: CPU per request by kind of thread, and
    py-spy's samples of the Python threads charged to the parts of the request path."""
    pid = server.procs[0].pid
    raw = out_dir / f"profile_{server.name.replace(' ', '_')}.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--duration",
            f"{seconds:g}",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    before = thread_cpu_s(pid)
    run = ghz.run(server, 4, seconds, warmup_s=0)
    after = thread_cpu_s(pid)
    spy.wait(60)
    n = run["n"] - run["errors"]
    per_thread = {k: 1000 * (v - before.get(k, 0.0)) / max(1, n) for k, v in after.items()}
    out: dict[str, Any] = {"run": run, "cpu_ms_per_request_by_thread": per_thread}
    if raw.is_file():
        total, parts, leaves = summarise(str(raw))
        out["py_spy_samples"] = total
        out["py_spy_parts"] = {k: v / total for k, v in parts.most_common()}
        out["py_spy_top"] = {k: v / total for k, v in leaves.most_common(25)}
    return out


def derived(row: dict[str, Any], key: str) -> dict[str, float]:
    """A run's figures relative to the same round's in-process ANN."""
    run, ann = row[key], row["ann"]
    return {
        **{
            k: run[k]
            for k in ("p50_ms", "p99_ms", "rps", "server_cpu_ms_per_request", "ghz_cpu_ms_per_request")
        },
        "p99_over_ann_p99": run["p99_ms"] / ann["p99_ms"],
        # the index's CPU per request (thread CPU time inside the Edge calls, searched in the calling
        # thread), not its wall time: wall time grows with the machine's load, CPU time hardly
        "cpu_outside_index_ms": run["server_cpu_ms_per_request"] - ann["cpu_mean_ms"],
        "errors": run["errors"],
    }


def medians(rounds: list[dict[str, Any]], servers: list[Server], concurrency: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ann": {
            k: statistics.median(r["ann"][k] for r in rounds)
            for k in ("p50_ms", "p99_ms", "mean_ms", "cpu_mean_ms")
        }
    }
    for s in servers:
        for c in concurrency:
            key = f"{s.name} c={c}"
            rows = [derived(r, key) for r in rounds]
            out[key] = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
    before = next((s.name for s in servers if s.name.startswith("before")), None)
    if before is not None:
        for s in servers:
            if s.name == before:
                continue
            for c in concurrency:
                b, a = f"{before} c={c}", f"{s.name} c={c}"
                pairs = [(derived(r, b), derived(r, a)) for r in rounds]
                out[f"{s.name} vs {before} c={c}"] = {
                    "cpu_outside_index_lower_by": statistics.median(
                        x["cpu_outside_index_ms"] / y["cpu_outside_index_ms"] for x, y in pairs
                    ),
                    "throughput_ratio": statistics.median(y["rps"] / x["rps"] for x, y in pairs),
                    "p99_ratio": statistics.median(y["p99_ms"] / x["p99_ms"] for x, y in pairs),
                }
    return out


def round_line(k: int, row: dict[str, Any], servers: list[Server], concurrency: list[int]) -> str:
    parts = [
        f"round {k + 1} (load {row['load_average'][0]}): ann p99 {row['ann']['p99_ms']:.2f} mean {row['ann']['mean_ms']:.2f} cpu {row['ann']['cpu_mean_ms']:.2f}"
    ]
    for s in servers:
        for c in concurrency:
            d = derived(row, f"{s.name} c={c}")
            parts.append(
                f"  {s.name:<9} c={c}: p99 {d['p99_ms']:6.2f} ms ({d['p99_over_ann_p99']:4.1f}x ANN) "
                f"{d['rps']:5.0f}/s cpu {d['server_cpu_ms_per_request']:.2f} ms/req "
                f"(outside index {d['cpu_outside_index_ms']:.2f}; ghz {d['ghz_cpu_ms_per_request']:.2f})"
            )
    return "\n".join(parts)


def summary(result: dict[str, Any], servers: list[Server], concurrency: list[int]) -> str:
    m = result["median"]
    lines = [
        "",
        f"medians over {len(result['rounds'])} rounds; ANN p50 {m['ann']['p50_ms']:.2f} p99 {m['ann']['p99_ms']:.2f} "
        f"mean {m['ann']['mean_ms']:.2f} ms, CPU {m['ann']['cpu_mean_ms']:.2f} ms",
        f"{'server':<10}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99/ANN':>9}{'req/s':>8}{'cpu ms/req':>12}"
        f"{'outside idx':>13}{'ghz ms/req':>12}",
    ]
    for s in servers:
        for c in concurrency:
            d = m[f"{s.name} c={c}"]
            lines.append(
                f"{s.name:<10}{c:>8}{d['p50_ms']:>9.2f}{d['p99_ms']:>9.2f}{d['p99_over_ann_p99']:>9.2f}"
                f"{d['rps']:>8.0f}{d['server_cpu_ms_per_request']:>12.3f}{d['cpu_outside_index_ms']:>13.3f}"
                f"{d['ghz_cpu_ms_per_request']:>12.3f}"
            )
    for key, v in m.items():
        if " vs " in key:
            lines.append(
                f"{key}: CPU outside the index {v['cpu_outside_index_lower_by']:.2f}x lower, "
                f"throughput {v['throughput_ratio']:.2f}x, p99 {v['p99_ratio']:.2f}x"
            )
    for name, p in result["profiles"].items():
        threads = ", ".join(
            f"{k} {v:.2f}"
            for k, v in sorted(p["cpu_ms_per_request_by_thread"].items(), key=lambda kv: -kv[1])
            if v >= 0.01
        )
        lines.append(f"profile {name}: CPU ms/request by thread: {threads}")
        for part, share in p.get("py_spy_parts", {}).items():
            lines.append(f"    {100 * share:5.1f} %  {part}")
    for name, procs in result["memory"].items():
        lines.append(
            f"memory {name}: "
            + "; ".join(f"RSS {p['rss_mib']:.0f} MiB, PSS {p['pss_mib']:.0f} MiB" for p in procs)
        )
    return "\n".join(lines)


def _commit(path: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()


if __name__ == "__main__":
    main()
