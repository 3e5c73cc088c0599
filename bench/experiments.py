"""Experiment statistics by simulation (issue 16): false-positive rate of A/A experiments looked at
daily, power and interval coverage of A/B experiments with a known lift, through the served statistics
(`vitrine.feedback.statistics`, the functions behind `vitrine report experiment`).

    .venv/bin/vitrine bench experiments -- --experiments 1000

Side by side in one run: the always-valid sequential test and the fixed-horizon z-test, both looked at
after every day (14 looks), and the sequential test looked at once (the end only).
"""

from __future__ import annotations

import argparse
import math
import os
import time

from _common import write_result

from vitrine.feedback.statistics import FixedHorizonTest, SequentialTest
from vitrine.simulation.experiments import TrafficConfig, simulate_experiments


def tolerance(rate: float, n: int, z: float = 2.326) -> float:
    """One-sided 99 % binomial tolerance of an observed rate around `rate`."""
    return z * math.sqrt(rate * (1 - rate) / n)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--units", type=int, default=4000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lifts", default="0.05,0.1,0.2,0.3")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    config = TrafficConfig(units=args.units, days=args.days)
    n, alpha = args.experiments, 0.05
    rows = []
    started = time.perf_counter()

    def run(name: str, lift: float, peeks: int, test: object) -> None:
        t = time.perf_counter()
        s = simulate_experiments(n, lift, peeks, config, test, seed=args.seed)  # type: ignore[arg-type]
        row = {"test": name, "peeks": peeks, **s.to_dict(), "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print(
            f"{name:<14} peeks={peeks:<3} lift={lift:<5} FPR={s.false_positive_rate:.3f} "
            f"power={'-' if s.power is None else f'{s.power:.3f}'} coverage={s.coverage:.3f}",
            flush=True,
        )

    run("sequential", 0.0, args.days, SequentialTest(alpha))
    run("fixed-horizon", 0.0, args.days, FixedHorizonTest(alpha))
    run("fixed-horizon", 0.0, 1, FixedHorizonTest(alpha))
    run("sequential", 0.0, 1, SequentialTest(alpha))
    for lift in (float(x) for x in args.lifts.split(",")):
        run("sequential", lift, args.days, SequentialTest(alpha))
        run("fixed-horizon", lift, 1, FixedHorizonTest(alpha))
    bound = alpha + tolerance(alpha, n)
    aa = rows[0]
    print(
        f"\nA/A with daily peeking: FPR {aa['false_positive_rate']:.3f} (alpha {alpha}, 99 % tolerance <= {bound:.3f})"
    )
    write_result(
        "experiments",
        {
            "experiments": n,
            "alpha": alpha,
            "fpr_tolerance_99": bound,
            "traffic": config.to_dict(),
            "rows": rows,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
