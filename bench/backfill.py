"""Backfill with bounded memory: publish N catalogue events, then run `vitrine encoder --backfill
--exit-when-caught-up` as a process and sample its resident memory every second until it finishes.

Reports records/s, peak and final RSS, and the RSS slope over the second half of the run (flat means
memory does not grow with the number of events; the vector sink keeps one integer per product, so a
catalogue of P products costs O(P), not O(N)). Issue 8 asks for 1,000,000 events:

    .venv/bin/vitrine bench backfill -- --events 1000000 --products 200000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import ensure_model, write_result
from soak import rss_mb
from tqdm import tqdm

from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.stack import LocalStack
from vitrine.stream.publisher import CatalogPublisher


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/bench-similar"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--products", type=int, default=200_000, help="distinct products (events cycle over them)"
    )
    args = parser.parse_args()

    model_dir = ensure_model(args.model).resolve()
    products = list(
        generate(
            SyntheticConfig(n_products=min(args.products, args.events), n_sessions=10, n_baskets=10)
        ).products
    )
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-backfill-"))
    stack = LocalStack(work, model_dir)
    samples: list[tuple[float, float]] = []
    try:
        stack.start_broker()
        with CatalogPublisher.connect(
            stack.kafka, stack.topics.products, linger_ms=50, batch_size=512 * 1024
        ) as pub:
            for i in tqdm(range(args.events), desc="publishing", unit="event"):
                p = products[i % len(products)]
                pub.upsert(replace(p, title=f"{p.title} r{i // len(products)}"))
                if i % 50_000 == 0:
                    pub.flush()
        started = time.monotonic()
        encoder = stack.start_encoder(
            name="backfill", group_id=None, flags=("--backfill", "--exit-when-caught-up"), wait=False
        )
        with tqdm(desc="backfill RSS samples", unit="s") as bar:
            while encoder.process.poll() is None:
                try:
                    samples.append((time.monotonic() - started, rss_mb(encoder.process.pid)))
                except (FileNotFoundError, RuntimeError):
                    break
                bar.update(1)
                time.sleep(1.0)
        seconds = time.monotonic() - started
        assert encoder.process.returncode == 0, encoder.log_tail()
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    t = np.array([s[0] for s in samples]) / 60
    rss = np.array([s[1] for s in samples])
    half = len(samples) // 2
    slope = float(np.polyfit(t[half:], rss[half:], 1)[0]) if len(samples) - half > 2 else float("nan")
    result = {
        "events": args.events,
        "products": len(products),
        "seconds": seconds,
        "events_per_s": args.events / seconds,
        "rss_mb_peak": float(rss.max()),
        "rss_mb_end": float(rss[-1]),
        "rss_slope_second_half_mb_per_min": slope,
    }
    print(
        f"backfill of {args.events:,} events ({len(products):,} products) in {seconds:.0f}s "
        f"({result['events_per_s']:,.0f}/s); RSS peak {result['rss_mb_peak']:.0f} MB, end {result['rss_mb_end']:.0f} MB, "
        f"slope over the second half {slope:+.2f} MB/min"
    )
    write_result("backfill", result)


if __name__ == "__main__":
    main()
