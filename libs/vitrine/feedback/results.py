"""Experiment results: the arms' records (topic catalog.experiments) combined into a report.

Each `ArmStatistics` record is cumulative for one arm in one partition, so an arm's totals at any
time are the sum over partitions of their latest record up to then; that gives both the current
report and its history (the CTR-with-intervals-over-time plot). The statistics are
`vitrine.feedback.statistics`: unit-level delta-method variances and the always-valid test, one
comparison per treatment variant against the experiment's control, Bonferroni-corrected over the
treatments.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka.structs import TopicPartition

from vitrine.feedback.attribution import ArmKey
from vitrine.feedback.changelog import decode_arm
from vitrine.feedback.statistics import (
    METRICS,
    ArmTotals,
    Comparison,
    Guard,
    Metric,
    SequentialTest,
    compare,
    rate_interval,
)
from vitrine.stream.kafka import KafkaSettings, make_consumer


@dataclass(frozen=True, slots=True)
class ArmRecord:
    arm: ArmKey
    control: str
    partition: int
    as_of: datetime
    totals: ArmTotals


@dataclass
class ExperimentResults:
    """The latest record per (arm, partition), and every record in order for the history."""

    latest: dict[tuple[ArmKey, int], ArmRecord] = field(default_factory=dict)
    history: list[ArmRecord] = field(default_factory=list)
    keep_history: bool = True

    def add(self, value: bytes) -> None:
        arm, control, partition, as_of, totals = decode_arm(value)
        record = ArmRecord(arm, control, partition, as_of, totals)
        self.latest[(arm, partition)] = record
        if self.keep_history:
            self.history.append(record)

    def arms(self) -> dict[ArmKey, ArmTotals]:
        return _combine(self.latest.values())

    def controls(self) -> dict[tuple[str, str], str]:
        """(experiment, placement) -> its control variant (as the latest impressions named it)."""
        out: dict[tuple[str, str], str] = {}
        for r in sorted(self.latest.values(), key=lambda r: r.as_of):
            if r.control:
                out[(r.arm[0], r.arm[2])] = r.control
        return out

    def series(self) -> Iterator[tuple[datetime, dict[ArmKey, ArmTotals]]]:
        """(time, every arm's totals as of then), at each time a record was written."""
        latest: dict[tuple[ArmKey, int], ArmRecord] = {}
        ordered = sorted(self.history, key=lambda r: r.as_of)
        for i, record in enumerate(ordered):
            latest[(record.arm, record.partition)] = record
            if i + 1 == len(ordered) or ordered[i + 1].as_of != record.as_of:
                yield record.as_of, _combine(latest.values())


def _combine(records: Iterable[ArmRecord]) -> dict[ArmKey, ArmTotals]:
    out: dict[ArmKey, ArmTotals] = {}
    for r in records:
        out[r.arm] = out[r.arm].merge(r.totals) if r.arm in out else r.totals.merge(ArmTotals())
    return out


def read_results(settings: KafkaSettings, topic: str, timeout_s: float = 120.0) -> ExperimentResults:
    """Read the results topic from the start to its (last stable) end."""
    results = ExperimentResults()
    consumer = make_consumer(settings, group_id=None, client_id=f"{settings.client_id}-report")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return results
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.value is not None:
                        results.add(r.value)
        return results
    finally:
        consumer.close()


@dataclass(frozen=True)
class ReportConfig:
    alpha: float = 0.05
    mixture_sd: float = 0.1
    primary_metric: Metric = "ctr"
    guard: Guard = field(default_factory=Guard)

    def test(self, treatments: int) -> SequentialTest:
        return SequentialTest(self.alpha / max(1, treatments), self.mixture_sd)


def _rates(totals: ArmTotals, test: SequentialTest) -> dict[str, Any]:
    out: dict[str, Any] = {
        "units": totals.units,
        "impressions": totals.impressions,
        "clicks": totals.clicks,
        "add_to_carts": totals.add_to_carts,
        "conversions": totals.conversions,
        "revenue": round(totals.revenue, 6),
    }
    for metric in METRICS:
        rate, lower, upper = rate_interval(totals, metric, test)
        out[metric] = {"estimate": rate, "lower": lower, "upper": None if upper == float("inf") else upper}
    return out


def experiment_report(
    results: ExperimentResults, config: ReportConfig | None = None, experiment: str | None = None
) -> dict[str, Any]:
    """The report `vitrine report experiment --json` prints: one entry per experiment x placement."""
    config = config or ReportConfig()
    arms = results.arms()
    controls = results.controls()
    as_of = max((r.as_of for r in results.latest.values()), default=None)
    entries = []
    for (exp, placement), control in sorted(controls.items()):
        if experiment is not None and exp != experiment:
            continue
        variants = sorted(v for (e, v, p) in arms if e == exp and p == placement)
        treatments = [v for v in variants if v != control]
        test = config.test(len(treatments))
        control_totals = arms.get((exp, control, placement), ArmTotals())
        comparisons: list[dict[str, Any]] = []
        primary: dict[str, Comparison] = {}
        for variant in treatments:
            for metric in METRICS:
                c = compare(control_totals, arms[(exp, variant, placement)], metric, test, config.guard)
                comparisons.append({"variant": variant, **c.to_dict()})
                if metric == config.primary_metric:
                    primary[variant] = c
        entries.append(
            {
                "experiment": exp,
                "placement": placement,
                "control": control,
                "variants": [
                    {"variant": v, **_rates(arms[(exp, v, placement)], test)}
                    for v in sorted(variants, key=lambda v: (v != control, v))
                ],
                "comparisons": comparisons,
                "primary_metric": config.primary_metric,
                "winner": _winner(control, primary),
                "alpha": config.alpha,
                "alpha_per_comparison": test.alpha,
            }
        )
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "test": f"always-valid normal-mixture confidence sequence (mSPRT), mixture sd {config.mixture_sd} on the log-lift",
        "experiments": entries,
    }


def _winner(control: str, primary: dict[str, Comparison]) -> str | None:
    """The best variant on the primary metric if it beats every other significantly, else None."""
    better = {v: c for v, c in primary.items() if c.significant and c.lower > 0}
    if better:
        best = max(better, key=lambda v: better[v].lift)
        return best
    if primary and all(c.significant and c.upper < 0 for c in primary.values()):
        return control
    return None


def plot_rates(
    results: ExperimentResults,
    out: Path,
    metric: Metric = "ctr",
    config: ReportConfig | None = None,
    experiment: str | None = None,
) -> Path:
    """The variants' `metric` over time with its always-valid intervals, one panel per experiment x
    placement (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = config or ReportConfig()
    points = list(results.series())
    panels = sorted({(a[0], a[2]) for _, arms in points for a in arms if experiment in (None, a[0])})
    if not panels:
        raise ValueError("no experiment results to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 3.6 * len(panels)), dpi=120, squeeze=False)
    for ax, (exp, placement) in zip(axes[:, 0], panels, strict=True):
        variants = sorted({a[1] for _, arms in points for a in arms if a[0] == exp and a[2] == placement})
        test = config.test(max(1, len(variants) - 1))
        for variant in variants:
            xs, ys, lo, hi = [], [], [], []
            for when, arms in points:
                totals = arms.get((exp, variant, placement))
                if totals is None or totals.units < config.guard.min_units:
                    continue
                rate, lower, upper = rate_interval(totals, metric, test)
                xs.append(when)
                ys.append(rate)
                lo.append(lower)
                hi.append(min(upper, 2 * rate + 1e-9) if upper == float("inf") else upper)
            if xs:
                (line,) = ax.plot(xs, ys, label=variant, linewidth=1.8)
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_title(f"{exp} / {placement}: {metric} with always-valid {1 - config.alpha:.0%} intervals")
        ax.set_ylabel(metric)
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
