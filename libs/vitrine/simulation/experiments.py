"""Simulated A/A and A/B experiments with a known true lift, run through the served statistics.

Traffic model (per experiment): `units` users enter over `days` days (staggered, as real traffic
does). Each unit has its own click propensity p_u ~ Beta (heterogeneous units: the reason the analysis
is per unit), is active on a day with probability `activity`, and then sees Poisson(`impressions_per_day`)
lists; each list is clicked with probability p_u (x (1 + lift) in the treatment arm), a click converts
with probability `purchase_given_click`, an order is worth a log-normal amount. Units are split 50/50.

After each of `peeks` equally spaced looks the arms' unit-level sums (`ArmTotals`, exactly what the
feedback service keeps) go through `statistics.compare`, the function behind `vitrine report
experiment`. An experiment is a false positive if any look declares a winner although the lift is 0;
it is detected if some look declares the treatment better; its final interval covers the lift or not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from vitrine.feedback.statistics import ArmTotals, Comparison, IntervalTest, Metric, SequentialTest, compare


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    units: int = 4_000
    days: int = 14
    base_ctr: float = 0.05
    ctr_concentration: float = 20.0  # Beta(a, b) with a + b = this: smaller = more heterogeneous units
    impressions_per_day: float = 3.0
    activity: float = 0.5
    purchase_given_click: float = 0.1
    order_value_median: float = 40.0
    order_value_sigma: float = 0.8

    def __post_init__(self) -> None:
        if self.units < 4 or self.days < 1:
            raise ValueError("units >= 4 and days >= 1 are required")
        if not 0 < self.base_ctr < 1 or not 0 < self.activity <= 1 or not 0 <= self.purchase_given_click <= 1:
            raise ValueError("base_ctr in (0, 1), activity in (0, 1], purchase_given_click in [0, 1]")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ExperimentRun:
    looks: tuple[Comparison, ...]

    @property
    def final(self) -> Comparison:
        return self.looks[-1]

    def declared(self) -> bool:
        return any(c.significant for c in self.looks)

    def detected(self, lift: float) -> bool:
        """Declared in the direction of the true lift at some look."""
        return any((c.lower > 0) if lift > 0 else (c.upper < 0) for c in self.looks if c.significant)

    def wrong_sign(self, lift: float) -> bool:
        return any((c.upper < 0) if lift > 0 else (c.lower > 0) for c in self.looks if c.significant)

    def covers(self, lift: float) -> bool:
        return self.final.lower <= lift <= self.final.upper


def look_days(days: int, peeks: int) -> list[int]:
    """The days after which the experiment is looked at: `peeks` looks spread evenly, the last at the end."""
    if peeks < 1:
        raise ValueError("peeks must be >= 1")
    return sorted({math.ceil(days * (i + 1) / peeks) for i in range(peeks)})


def _arm(n: np.ndarray, c: np.ndarray, k: np.ndarray, r: np.ndarray, carts: np.ndarray) -> ArmTotals:
    seen = n > 0  # a unit exists for the feedback service once it has had an impression
    n, c, k, r = (a[seen].astype(np.float64) for a in (n, c, k, r))
    return ArmTotals(
        units=int(seen.sum()),
        impressions=int(n.sum()),
        clicks=int(c.sum()),
        add_to_carts=int(carts[seen].sum()),
        conversions=int(k.sum()),
        revenue=float(r.sum()),
        impressions_sq=float((n * n).sum()),
        clicks_sq=float((c * c).sum()),
        impressions_clicks=float((n * c).sum()),
        conversions_sq=float((k * k).sum()),
        impressions_conversions=float((n * k).sum()),
        revenue_sq=float((r * r).sum()),
        impressions_revenue=float((n * r).sum()),
    )


def simulate_run(
    config: TrafficConfig,
    lift: float,
    peeks: int,
    rng: np.random.Generator,
    test: IntervalTest,
    metric: Metric = "ctr",
) -> ExperimentRun:
    u = config.units
    treated = rng.random(u) < 0.5
    entry = rng.integers(0, config.days, u)
    a = config.ctr_concentration * config.base_ctr
    p = rng.beta(a, config.ctr_concentration - a, u)
    p = np.where(treated, np.minimum(p * (1 + lift), 1.0), p)
    totals = {name: np.zeros(u, dtype=np.float64) for name in ("n", "c", "k", "r", "carts")}
    looks = set(look_days(config.days, peeks))
    results: list[Comparison] = []
    mu = math.log(config.order_value_median)
    for day in range(config.days):
        active = (entry == day) | ((entry < day) & (rng.random(u) < config.activity))
        n = rng.poisson(config.impressions_per_day, u) * active
        c = rng.binomial(n, p)
        k = rng.binomial(c, config.purchase_given_click)
        carts = rng.binomial(c, min(1.0, 2 * config.purchase_given_click))
        values = rng.lognormal(mu, config.order_value_sigma, int(k.sum()))
        r = np.bincount(np.repeat(np.arange(u), k), weights=values, minlength=u)
        for name, arr in (("n", n), ("c", c), ("k", k), ("r", r), ("carts", carts)):
            totals[name] += arr
        if day + 1 in looks:
            arms = [
                _arm(*(totals[x][mask] for x in ("n", "c", "k", "r", "carts")))
                for mask in (~treated, treated)
            ]
            results.append(compare(arms[0], arms[1], metric, test))
    return ExperimentRun(tuple(results))


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    experiments: int
    lift: float
    false_positive_rate: float
    power: float | None
    coverage: float

    def to_dict(self) -> dict[str, object]:
        return {
            "experiments": self.experiments,
            "lift": self.lift,
            "false_positive_rate": self.false_positive_rate,
            "power": self.power,
            "coverage": self.coverage,
        }


def simulate_experiments(
    experiments: int,
    lift: float = 0.0,
    peeks: int = 14,
    config: TrafficConfig | None = None,
    test: IntervalTest | None = None,
    metric: Metric = "ctr",
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Run `experiments` independent experiments. With lift 0 the false-positive rate is the share that
    declared any winner at any look; with a lift it is the share that declared the wrong direction, and
    power the share that declared the right one. Coverage: the final interval holds the true lift."""
    if experiments < 1:
        raise ValueError("experiments must be >= 1")
    if lift <= -1:
        raise ValueError("lift must be > -1 (a relative change of the click-through rate)")
    config = config or TrafficConfig()
    chosen: IntervalTest = test or SequentialTest()
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(experiments):
        runs.append(simulate_run(config, lift, peeks, rng, chosen, metric))
        if progress is not None:
            progress(i + 1)
    if lift == 0:
        fpr = sum(r.declared() for r in runs) / experiments
        power = None
    else:
        fpr = sum(r.wrong_sign(lift) for r in runs) / experiments
        power = sum(r.detected(lift) for r in runs) / experiments
    coverage = sum(r.covers(lift) for r in runs) / experiments
    return SimulationSummary(experiments, lift, fpr, power, coverage)
