"""`vitrine report experiment`: the A/B results the feedback service keeps, with always-valid intervals."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("report", help="reports (experiment results)")
    reports = parser.add_subparsers(dest="report", metavar="REPORT", required=True)
    exp = reports.add_parser(
        "experiment",
        help="per experiment x placement: each variant's CTR, conversion and revenue per impression, and "
        "its lift over the control with always-valid intervals (valid however often you look)",
    )
    exp.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    exp.add_argument("--results-topic", default="catalog.experiments")
    exp.add_argument("--experiment", default=None, help="only this experiment (default: all)")
    exp.add_argument("--alpha", type=float, default=0.05)
    exp.add_argument(
        "--mixture-sd", type=float, default=0.1, help="the sequential test's mixture sd (log-lift)"
    )
    exp.add_argument(
        "--metric",
        choices=("ctr", "conversion", "revenue_per_impression"),
        default="ctr",
        help="primary metric",
    )
    exp.add_argument("--json", action="store_true", help="print the report as JSON")
    exp.add_argument(
        "--plot", type=Path, default=None, help="write a PNG of the metric over time with intervals"
    )
    exp.set_defaults(handler=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    from vitrine.errors import ConfigError
    from vitrine.feedback.results import ReportConfig, experiment_report, plot_rates, read_results
    from vitrine.stream.kafka import KafkaSettings

    try:
        config = ReportConfig(alpha=args.alpha, mixture_sd=args.mixture_sd, primary_metric=args.metric)
        config.test(1)  # validates alpha and the mixture sd
    except ValueError as e:
        raise ConfigError(str(e)) from e
    results = read_results(
        KafkaSettings(args.bootstrap_servers, client_id="vitrine-report"), args.results_topic
    )
    report = experiment_report(results, config, args.experiment)
    if args.plot is not None and report["experiments"]:
        plot_rates(results, args.plot, args.metric, config, args.experiment)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(experiment_table(report))
    return 0


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "inf"
    return f"{100 * x:+.1f}%" if pct else f"{x:.4f}"


def experiment_table(report: dict[str, Any]) -> str:
    if not report["experiments"]:
        return "no experiment results yet"
    lines = [f"as of {report['as_of']} ({report['test']})"]
    for e in report["experiments"]:
        lines.append(
            f"\n{e['experiment']} / {e['placement']} (control: {e['control']}, winner: {e['winner']})"
        )
        lines.append(
            f"  {'variant':<20} {'units':>8} {'impr.':>9} {'clicks':>8} {'CTR':>8} {'conv.':>8} {'rev/impr':>9}"
        )
        for v in e["variants"]:
            lines.append(
                f"  {v['variant']:<20} {v['units']:>8} {v['impressions']:>9} {v['clicks']:>8} "
                f"{v['ctr']['estimate']:>8.4f} {v['conversion']['estimate']:>8.4f} "
                f"{v['revenue_per_impression']['estimate']:>9.3f}"
            )
        for c in e["comparisons"]:
            lines.append(
                f"  {c['variant']} vs {e['control']} {c['metric']}: lift {_fmt(c['lift'])} "
                f"[{_fmt(c['lower'])}, {_fmt(c['upper'])}], p={c['p_value']:.3g}: {c['verdict']}"
            )
    return "\n".join(lines)
