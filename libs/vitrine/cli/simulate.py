"""`vitrine simulate experiment`: A/A or A/B experiments on simulated traffic through the served
statistics, in-process (no broker): the false-positive rate under peeking, power and coverage."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("simulate", help="simulations (experiments)")
    sims = parser.add_subparsers(dest="simulation", metavar="SIMULATION", required=True)
    exp = sims.add_parser(
        "experiment",
        help="N simulated experiments with a known lift, looked at K times each: prints the false-positive "
        "rate, power and interval coverage of the experiment statistics",
    )
    exp.add_argument("--experiments", type=int, required=True, metavar="N")
    exp.add_argument(
        "--lift", type=float, default=0.0, help="true relative CTR lift of the treatment (0 = A/A)"
    )
    exp.add_argument(
        "--peeks", type=int, default=14, metavar="K", help="looks per experiment (default: daily)"
    )
    exp.add_argument("--days", type=int, default=14)
    exp.add_argument("--units", type=int, default=4000, help="units (users) per experiment")
    exp.add_argument("--base-ctr", type=float, default=0.05)
    exp.add_argument("--alpha", type=float, default=0.05)
    exp.add_argument("--mixture-sd", type=float, default=0.1)
    exp.add_argument(
        "--test",
        choices=("sequential", "fixed-horizon"),
        default="sequential",
        help="fixed-horizon: the z-test, to see what peeking does to it",
    )
    exp.add_argument("--metric", choices=("ctr", "conversion", "revenue_per_impression"), default="ctr")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--json", action="store_true", help="print only the JSON summary")
    exp.set_defaults(handler=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    from vitrine.errors import ConfigError
    from vitrine.feedback.statistics import FixedHorizonTest, SequentialTest
    from vitrine.simulation.experiments import TrafficConfig, simulate_experiments

    try:
        config = TrafficConfig(units=args.units, days=args.days, base_ctr=args.base_ctr)
        test = (
            SequentialTest(args.alpha, args.mixture_sd)
            if args.test == "sequential"
            else FixedHorizonTest(args.alpha)
        )
        step = max(1, args.experiments // 10)

        def progress(done: int) -> None:
            if not args.json and (done % step == 0 or done == args.experiments):
                print(f"  {done}/{args.experiments} experiments", file=sys.stderr)

        summary = simulate_experiments(
            args.experiments, args.lift, args.peeks, config, test, args.metric, args.seed, progress
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    print(json.dumps(summary.to_dict()))
    return 0
