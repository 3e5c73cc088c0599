"""Experiment statistics that stay valid when people look every day.

**Unit of analysis.** Traffic is split by unit key (a user or session), so units, not impressions, are
the independent observations: one heavy user's many impressions are correlated. Each arm (experiment
x variant x placement) keeps sums over its units of the per-unit totals and of their squares and
products (`ArmTotals`); a metric such as CTR = sum clicks / sum impressions is a ratio of two unit
means, and its variance comes from the delta method (Deng, Knoblich & Lu 2018, "Applying the Delta
Method in Metric Analytics"). Treating impressions as independent would understate the variance and
declare winners that are not.

**Sequential test.** Lifts are relative, compared on the log scale: theta = log(R_t / R_c), estimated
with variance V = Var(log R_t) + Var(log R_c). The interval is the two-sided normal-mixture confidence
sequence (the mixture SPRT of Robbins 1970, as used for always-valid inference by Johari, Koomen,
Pekelis & Walsh 2017, with a plug-in variance as in the asymptotic confidence sequences of
Waudby-Smith, Arnold, Wu, Wang & Ramdas 2024):

    |theta_hat - theta| <= sqrt( V (V + tau^2) / tau^2 * log((V + tau^2) / (V alpha^2)) )

which holds at every look at once with probability >= 1 - alpha (asymptotically), so peeking daily
and stopping at the first significant look keeps the false-positive rate at alpha. tau is the scale
of the lifts one expects (the mixing prior's standard deviation on the log-lift; 0.1 = lifts of about
10 %); any fixed tau is valid, it only moves where the interval is tightest. The always-valid p-value
is 1 / the mixture likelihood ratio. The same formula is `TwoSidedNormalMixture` in Howard et al.'s
`confseq` (bound sqrt((v + rho)(log(1 + v/rho) + 2 log(1/alpha))) in the information scale v = 1/V,
rho = 1/tau^2); docs/EXPERIMENTS.md says why no library is used and how the test was verified
(A/A simulations with daily peeking).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Literal, Protocol

Metric = Literal["ctr", "conversion", "revenue_per_impression"]
METRICS: tuple[Metric, ...] = ("ctr", "conversion", "revenue_per_impression")


@dataclass(slots=True)
class UnitOutcome:
    """One unit's totals in one arm."""

    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    conversions: int = 0
    revenue: float = 0.0


@dataclass(slots=True)
class ArmTotals:
    """Sums over the units of one arm: totals, squares and cross products (additive across partitions)."""

    units: int = 0
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    conversions: int = 0
    revenue: float = 0.0
    impressions_sq: float = 0.0
    clicks_sq: float = 0.0
    impressions_clicks: float = 0.0
    conversions_sq: float = 0.0
    impressions_conversions: float = 0.0
    revenue_sq: float = 0.0
    impressions_revenue: float = 0.0

    def add_unit(self, unit: UnitOutcome, sign: int = 1) -> None:
        """Add (sign=1) or remove (sign=-1) one unit's contribution."""
        n, c, k, r = unit.impressions, unit.clicks, unit.conversions, unit.revenue
        self.units += sign
        self.impressions += sign * n
        self.clicks += sign * c
        self.add_to_carts += sign * unit.add_to_carts
        self.conversions += sign * k
        self.revenue += sign * r
        self.impressions_sq += sign * n * n
        self.clicks_sq += sign * c * c
        self.impressions_clicks += sign * n * c
        self.conversions_sq += sign * k * k
        self.impressions_conversions += sign * n * k
        self.revenue_sq += sign * r * r
        self.impressions_revenue += sign * n * r

    def replace_unit(self, old: UnitOutcome | None, new: UnitOutcome) -> None:
        if old is not None:
            self.add_unit(old, -1)
        self.add_unit(new)

    def merge(self, other: ArmTotals) -> ArmTotals:
        out = ArmTotals()
        for f in fields(ArmTotals):
            setattr(out, f.name, getattr(self, f.name) + getattr(other, f.name))
        return out

    def numerator(self, metric: Metric) -> tuple[float, float, float]:
        """(sum y, sum y^2, sum n*y) of the metric's per-unit outcome y."""
        if metric == "ctr":
            return self.clicks, self.clicks_sq, self.impressions_clicks
        if metric == "conversion":
            return self.conversions, self.conversions_sq, self.impressions_conversions
        if metric == "revenue_per_impression":
            return self.revenue, self.revenue_sq, self.impressions_revenue
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")

    def rate(self, metric: Metric) -> float:
        return self.numerator(metric)[0] / self.impressions if self.impressions else 0.0


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    value: float  # sum y / sum n
    variance: float  # delta-method variance of the ratio
    units: int
    events: float  # sum y (clicks, conversions or revenue)

    @property
    def log_variance(self) -> float:
        """Variance of log(value) (delta method again); inf when the ratio is 0."""
        return self.variance / self.value**2 if self.value > 0 else math.inf


def ratio_estimate(arm: ArmTotals, metric: Metric) -> RatioEstimate:
    """sum y / sum n over units, with the delta-method variance over units (sample variances)."""
    y, yy, ny = arm.numerator(metric)
    n_units = arm.units
    if n_units < 2 or arm.impressions <= 0:
        return RatioEstimate(0.0 if not arm.impressions else y / arm.impressions, math.inf, n_units, y)
    mean_x = arm.impressions / n_units
    mean_y = y / n_units
    ratio = y / arm.impressions
    dof = n_units - 1
    var_x = max(0.0, (arm.impressions_sq - n_units * mean_x * mean_x) / dof)
    var_y = max(0.0, (yy - n_units * mean_y * mean_y) / dof)
    cov = (ny - n_units * mean_x * mean_y) / dof
    spread = max(0.0, var_y - 2 * ratio * cov + ratio * ratio * var_x)
    return RatioEstimate(ratio, spread / (n_units * mean_x * mean_x), n_units, y)


class IntervalTest(Protocol):
    @property
    def alpha(self) -> float: ...

    def radius(self, variance: float) -> float: ...

    def p_value(self, estimate: float, variance: float) -> float: ...


@dataclass(frozen=True, slots=True)
class SequentialTest:
    """The normal-mixture confidence sequence / mSPRT (module docstring): valid under continuous peeking."""

    alpha: float = 0.05
    mixture_sd: float = 0.1  # tau, on the log-lift scale

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not self.mixture_sd > 0:
            raise ValueError("alpha must be in (0, 1) and mixture_sd > 0")

    def radius(self, variance: float) -> float:
        if not math.isfinite(variance):
            return math.inf
        if variance <= 0:
            return 0.0
        tau2 = self.mixture_sd**2
        return math.sqrt(
            variance * (variance + tau2) / tau2 * math.log((variance + tau2) / (variance * self.alpha**2))
        )

    def p_value(self, estimate: float, variance: float) -> float:
        """Always-valid p-value of theta = 0: 1 / the mixture likelihood ratio (capped at 1)."""
        if not math.isfinite(variance) or variance <= 0:
            return 1.0
        tau2 = self.mixture_sd**2
        log_lr = 0.5 * math.log(variance / (variance + tau2)) + tau2 * estimate**2 / (
            2 * variance * (variance + tau2)
        )
        return 1.0 if log_lr <= 0 else math.exp(-log_lr)


@dataclass(frozen=True, slots=True)
class FixedHorizonTest:
    """The textbook z-test: valid at ONE look planned in advance. Checked at every look it declares far
    more A/A winners than alpha (docs/EXPERIMENTS.md); here to show that, never for decisions."""

    alpha: float = 0.05

    def radius(self, variance: float) -> float:
        if not math.isfinite(variance):
            return math.inf
        return NormalDist().inv_cdf(1 - self.alpha / 2) * math.sqrt(max(variance, 0.0))

    def p_value(self, estimate: float, variance: float) -> float:
        if not math.isfinite(variance) or variance <= 0:
            return 1.0
        return 2 * (1 - NormalDist().cdf(abs(estimate) / math.sqrt(variance)))


@dataclass(frozen=True, slots=True)
class Guard:
    """Below these an interval is not reported (the normal approximation needs some data per arm)."""

    min_units: int = 100
    min_events: float = 10.0


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment arm against the control arm on one metric; lift = R_t / R_c - 1."""

    metric: str
    control: float
    treatment: float
    lift: float
    lower: float  # interval on the lift (always valid under a SequentialTest)
    upper: float
    p_value: float
    enough_data: bool

    @property
    def significant(self) -> bool:
        return self.enough_data and (self.lower > 0 or self.upper < 0)

    @property
    def verdict(self) -> str:
        if not self.enough_data:
            return "not enough data"
        if self.lower > 0:
            return "treatment better"
        if self.upper < 0:
            return "control better"
        return "no difference detected"

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "control": self.control,
            "treatment": self.treatment,
            "lift": _finite(self.lift),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "p_value": self.p_value,
            "significant": self.significant,
            "verdict": self.verdict,
        }


def compare(
    control: ArmTotals, treatment: ArmTotals, metric: Metric, test: IntervalTest, guard: Guard | None = None
) -> Comparison:
    guard = guard or Guard()
    c, t = ratio_estimate(control, metric), ratio_estimate(treatment, metric)
    enough = all(e.units >= guard.min_units and e.events >= guard.min_events for e in (c, t))
    if c.value <= 0 or t.value <= 0:
        lift = (t.value / c.value - 1) if c.value > 0 else math.nan
        return Comparison(metric, c.value, t.value, lift, -math.inf, math.inf, 1.0, False)
    theta = math.log(t.value / c.value)
    variance = c.log_variance + t.log_variance
    radius = test.radius(variance)
    return Comparison(
        metric,
        c.value,
        t.value,
        math.exp(theta) - 1,
        math.exp(theta - radius) - 1 if math.isfinite(radius) else -1.0,
        math.exp(theta + radius) - 1 if math.isfinite(radius) else math.inf,
        test.p_value(theta, variance),
        enough,
    )


def rate_interval(arm: ArmTotals, metric: Metric, test: IntervalTest) -> tuple[float, float, float]:
    """(rate, lower, upper) of one arm's metric, on the log scale like the lifts (for plots)."""
    e = ratio_estimate(arm, metric)
    if e.value <= 0:
        return e.value, 0.0, math.inf
    radius = test.radius(e.log_variance)
    if not math.isfinite(radius):
        return e.value, 0.0, math.inf
    return e.value, e.value * math.exp(-radius), e.value * math.exp(radius)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
