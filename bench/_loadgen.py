"""A Python gRPC load generator: `concurrency` closed-loop clients, each in its own process (so the
clients do not serialise on one GIL) with its own channel, sending pre-serialised requests round-robin.

Kept free of heavy imports: every client process imports only this module and grpc.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    latencies_s: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.seconds if self.seconds else 0.0


def _client(
    target: str,
    method: str,
    payloads: list[bytes],
    offset: int,
    start_at: float,
    warmup_s: float,
    duration_s: float,
) -> tuple[list[float], int, float]:
    import grpc

    channel = grpc.insecure_channel(target)
    # bytes in, bytes out: the client spends no time on protobuf, the server does all of its work
    call = channel.unary_unary(f"/vitrine.v1.Recommender/{method}")
    grpc.channel_ready_future(channel).result(timeout=30)
    latencies: list[float] = []
    errors = 0
    i = offset
    # every client starts at the same wall-clock moment, whenever its process finished starting
    time.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    measure_from = start + warmup_s
    end = measure_from + duration_s
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        payload = payloads[i % len(payloads)]
        i += 1
        try:
            call(payload, timeout=10)
            ok = True
        except grpc.RpcError:
            ok = False
        done = time.perf_counter()
        if now >= measure_from:
            if ok:
                latencies.append(done - now)
            else:
                errors += 1
    channel.close()
    return latencies, errors, end - measure_from


def run_load(
    target: str,
    method: str,
    payloads: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
) -> LoadResult:
    ctx = mp.get_context("spawn")  # never fork a process that holds gRPC and onnxruntime state
    step = max(1, len(payloads) // concurrency)
    start_at = time.time() + 5.0 + 0.5 * concurrency  # time for the client processes to start
    with ctx.Pool(concurrency) as pool:
        parts = pool.starmap(
            _client,
            [
                (target, method, payloads, k * step, start_at, warmup_s, duration_s)
                for k in range(concurrency)
            ],
        )
    latencies = [x for lat, _, _ in parts for x in lat]
    return LoadResult(latencies, sum(e for _, e, _ in parts), max(s for _, _, s in parts))


def _interleaved_client(
    targets: list[str],
    method: str,
    payloads: list[bytes],
    offset: int,
    start_at: float,
    slice_s: float,
    slices: int,
) -> list[tuple[int, float]]:
    import grpc

    channels = [grpc.insecure_channel(t) for t in targets]
    calls = [c.unary_unary(f"/vitrine.v1.Recommender/{method}") for c in channels]
    for c in channels:
        grpc.channel_ready_future(c).result(timeout=30)
    samples: list[tuple[int, float]] = []  # (slice, latency or -1 for an error)
    i = offset
    time.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        k = int((now - start) / slice_s)
        if k >= slices:
            break
        payload = payloads[i % len(payloads)]
        i += 1
        try:
            calls[slice_target(k)](payload, timeout=10)
            samples.append((k, time.perf_counter() - now))
        except grpc.RpcError:
            samples.append((k, -1.0))
    for c in channels:
        c.close()
    return samples


def slice_target(k: int) -> int:
    """Which of two targets slice k loads: A B B A A B B A ... (a linear drift hits both alike)."""
    return (k + (k // 2)) % 2


def run_interleaved(
    targets: list[str],
    method: str,
    payloads: list[bytes],
    concurrency: int,
    slice_s: float,
    slices: int,
) -> list[list[float]]:
    """Two servers loaded in alternating slices by the same closed-loop clients (warm channels to both,
    the switch at the same moment in every client): per slice, the latencies (s; -1 = error). Slices
    of a few seconds, interleaved many times, put machine noise on both arms alike."""
    assert len(targets) == 2
    ctx = mp.get_context("spawn")
    step = max(1, len(payloads) // concurrency)
    start_at = time.time() + 5.0 + 0.5 * concurrency
    with ctx.Pool(concurrency) as pool:
        parts = pool.starmap(
            _interleaved_client,
            [(targets, method, payloads, k * step, start_at, slice_s, slices) for k in range(concurrency)],
        )
    by_slice: list[list[float]] = [[] for _ in range(slices)]
    for part in parts:
        for k, latency in part:
            by_slice[k].append(latency)
    return by_slice
