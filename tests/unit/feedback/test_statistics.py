"""The experiment statistics: the delta method over units, the always-valid interval, and, by
simulation, the error rates an experimenter relies on (false positives under daily peeking, power,
coverage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitrine.feedback.statistics import (
    ArmTotals,
    FixedHorizonTest,
    SequentialTest,
    UnitOutcome,
    compare,
    ratio_estimate,
)
from vitrine.simulation.experiments import TrafficConfig, simulate_experiments

N_EXPERIMENTS = 200
ALPHA = 0.05


def binomial_upper(rate: float, n: int, z: float = 2.326) -> float:
    """The one-sided 99 % tolerance bound of an observed rate whose true value is `rate`."""
    return rate + z * math.sqrt(rate * (1 - rate) / n)


def test_the_delta_method_variance_matches_the_textbook_formula_over_units() -> None:
    rng = np.random.default_rng(3)
    n = rng.poisson(5, 400) + 1
    c = rng.binomial(n, 0.1)
    arm = ArmTotals()
    for ni, ci in zip(n, c, strict=True):
        arm.add_unit(UnitOutcome(int(ni), int(ci)))
    est = ratio_estimate(arm, "ctr")
    r = c.sum() / n.sum()
    expected = np.var(c - r * n, ddof=1) / (len(n) * n.mean() ** 2)  # linearised ratio
    assert est.value == pytest.approx(r)
    assert est.variance == pytest.approx(expected, rel=1e-9)


def test_removing_a_unit_undoes_adding_it() -> None:
    arm = ArmTotals()
    arm.add_unit(UnitOutcome(3, 1, 0, 1, 9.5))
    arm.replace_unit(UnitOutcome(3, 1, 0, 1, 9.5), UnitOutcome(4, 2, 1, 1, 9.5))
    fresh = ArmTotals()
    fresh.add_unit(UnitOutcome(4, 2, 1, 1, 9.5))
    assert arm == fresh


def test_the_interval_is_the_normal_mixture_boundary_of_confseq() -> None:
    """Same boundary as confseq's TwoSidedNormalMixture in the information scale (v = 1/V, rho = 1/tau^2)."""
    test = SequentialTest(alpha=0.05, mixture_sd=0.1)
    for variance in (1e-2, 1e-3, 1e-4, 1e-6):
        v, rho = 1 / variance, 1 / 0.1**2
        confseq = math.sqrt((v + rho) * (math.log(1 + v / rho) + 2 * math.log(1 / 0.05))) / v
        assert test.radius(variance) == pytest.approx(confseq, rel=1e-12)


def test_the_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero() -> None:
    test = SequentialTest(alpha=0.05)
    variance = 4e-4
    edge = test.radius(variance)
    assert test.p_value(edge * 0.999, variance) > 0.05
    assert test.p_value(edge * 1.001, variance) < 0.05


def test_a_comparison_waits_for_enough_data() -> None:
    small = ArmTotals()
    small.add_unit(UnitOutcome(10, 1))
    assert compare(small, small, "ctr", SequentialTest()).verdict == "not enough data"


def test_aa_experiments_peeked_at_daily_stay_within_the_false_positive_rate() -> None:
    summary = simulate_experiments(N_EXPERIMENTS, lift=0.0, peeks=14, seed=11)
    assert summary.power is None
    assert summary.false_positive_rate <= binomial_upper(ALPHA, N_EXPERIMENTS)
    assert summary.coverage >= 1 - binomial_upper(ALPHA, N_EXPERIMENTS)


def test_control_the_fixed_horizon_test_peeked_at_daily_fails_the_same_check() -> None:
    """The oracle above can fail: the z-test, valid at one planned look, looked at 14 times, declares
    far more A/A winners than alpha (the defect a sequential test exists to avoid)."""
    summary = simulate_experiments(N_EXPERIMENTS, lift=0.0, peeks=14, test=FixedHorizonTest(), seed=11)
    assert summary.false_positive_rate > binomial_upper(ALPHA, N_EXPERIMENTS)


def test_a_true_lift_is_detected_and_covered_at_the_nominal_rate() -> None:
    lift = 0.3
    summary = simulate_experiments(
        N_EXPERIMENTS, lift=lift, peeks=14, config=TrafficConfig(units=3000), seed=12
    )
    assert summary.power is not None and summary.power >= 0.8
    assert summary.coverage >= 1 - binomial_upper(ALPHA, N_EXPERIMENTS)
    assert summary.false_positive_rate <= binomial_upper(ALPHA, N_EXPERIMENTS)  # the wrong direction
