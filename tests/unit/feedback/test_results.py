from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vitrine.feedback.changelog import arm_record
from vitrine.feedback.results import ExperimentResults, ReportConfig, experiment_report, plot_rates
from vitrine.feedback.statistics import ArmTotals, UnitOutcome

DAY_MS = 86_400_000


def arm(units: int, ctr: float, seed: int) -> ArmTotals:
    rng = np.random.default_rng(seed)
    totals = ArmTotals()
    for _ in range(units):
        n = int(rng.integers(1, 6))
        totals.add_unit(UnitOutcome(n, int(rng.binomial(n, ctr)), 0, 0, 0.0))
    return totals


def results_of(lift: float) -> ExperimentResults:
    """Two partitions, three days of cumulative records per arm (as the feedback service writes them)."""
    results = ExperimentResults()
    for day in range(1, 4):
        for partition in (0, 1):
            for variant, ctr in (("a", 0.05), ("b", 0.05 * (1 + lift))):
                totals = arm(600 * day, ctr, seed=day * 10 + partition * 3 + (variant == "b"))
                _, value = arm_record(("exp", variant, "pdp"), "a", partition, totals, day * DAY_MS)
                results.add(value)  # type: ignore[arg-type]
    return results


def test_the_report_sums_the_latest_record_of_every_partition_and_names_the_winner() -> None:
    results = results_of(lift=0.6)
    report = experiment_report(results, ReportConfig())
    (entry,) = report["experiments"]
    assert (entry["experiment"], entry["placement"], entry["control"]) == ("exp", "pdp", "a")
    a = next(v for v in entry["variants"] if v["variant"] == "a")
    latest = [r.totals for r in results.latest.values() if r.arm[1] == "a"]
    assert a["units"] == sum(t.units for t in latest) == 3600
    assert a["impressions"] == sum(t.impressions for t in latest)
    (ctr,) = [c for c in entry["comparisons"] if c["metric"] == "ctr"]
    assert ctr["lower"] > 0 and entry["winner"] == "b"
    assert experiment_report(results_of(lift=0.0))["experiments"][0]["winner"] is None


def test_the_history_is_cumulative_per_look_and_plots(tmp_path: Path) -> None:
    results = results_of(lift=0.3)
    series = list(results.series())
    assert len(series) == 3
    units = [sum(t.units for k, t in arms.items() if k[1] == "a") for _, arms in series]
    assert units == [1200, 2400, 3600]
    out = plot_rates(results, tmp_path / "ctr.png")
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_simulate_experiment_prints_exactly_the_issue_s_json() -> None:
    cmd = [
        sys.executable,
        "-m",
        "vitrine.cli.main",
        "simulate",
        "experiment",
        "--experiments",
        "5",
        "--units",
        "400",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    assert list(summary) == ["experiments", "lift", "false_positive_rate", "power", "coverage"]
    assert summary["experiments"] == 5 and summary["lift"] == 0.0 and summary["power"] is None
    with_lift = json.loads(
        subprocess.run([*cmd, "--lift", "0.5"], capture_output=True, text=True, check=True).stdout
    )
    assert isinstance(with_lift["power"], float)


def test_the_service_exports_the_report_as_gauges() -> None:
    from vitrine.feedback.view import ResultsView
    from vitrine.obs.metrics import FeedbackMetrics

    metrics = FeedbackMetrics()
    view = ResultsView(None, "catalog.experiments", metrics)  # type: ignore[arg-type]  # export() reads no topic
    view.results = results_of(lift=0.6)
    view.export()
    sample = metrics.registry.get_sample_value
    arm = {"experiment": "exp", "variant": "b", "placement": "pdp"}
    assert sample("vitrine_feedback_arm_units", arm) == 3600
    assert sample("vitrine_feedback_lift", {**arm, "metric": "ctr", "bound": "lower"}) > 0
    report = experiment_report(view.results)["experiments"][0]
    (ctr,) = [c for c in report["comparisons"] if c["metric"] == "ctr"]
    assert sample("vitrine_feedback_lift", {**arm, "metric": "ctr", "bound": "estimate"}) == ctr["lift"]
