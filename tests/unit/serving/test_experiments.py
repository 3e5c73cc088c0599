"""The experiment split: deterministic per unit key, proportional to the weights, stable across
router instances (i.e. replicas and restarts), reshuffled by a new salt."""

from __future__ import annotations

from collections import Counter

import pytest

from vitrine.errors import ConfigError, InvalidRequestError
from vitrine.serving.experiments import ExperimentRouter, Variant, unit_point
from vitrine.serving.results import Task

VARIANTS = [Variant("control", 80, similar="a"), Variant("treatment", 20, similar="b")]
KEYS = [f"user-{i}" for i in range(20_000)]


def test_the_same_unit_always_gets_the_same_variant_in_every_replica() -> None:
    first, second = ExperimentRouter(VARIANTS, "exp-1"), ExperimentRouter(list(VARIANTS), "exp-1")
    assignments = [first.assign(k).name for k in KEYS[:2000]]
    assert assignments == [first.assign(k).name for k in KEYS[:2000]]
    assert assignments == [second.assign(k).name for k in KEYS[:2000]]
    # pinned values: the hash must not change between releases, or every user would switch arms
    assert unit_point("exp-1", "user-1") == pytest.approx(0.584047046, abs=1e-9)
    assert unit_point("vitrine", "user-42") == pytest.approx(0.371230654, abs=1e-9)


def test_the_split_follows_the_weights() -> None:
    counts = Counter(ExperimentRouter(VARIANTS, "exp-1").assign(k).name for k in KEYS)
    assert counts["treatment"] / len(KEYS) == pytest.approx(0.2, abs=0.015)
    three = [Variant("a", 1), Variant("b", 1), Variant("c", 2)]
    counts = Counter(ExperimentRouter(three, "s").assign(k).name for k in KEYS)
    assert [counts[n] / len(KEYS) for n in "abc"] == pytest.approx([0.25, 0.25, 0.5], abs=0.015)


def test_a_new_salt_reshuffles_the_units() -> None:
    a = [ExperimentRouter(VARIANTS, "exp-1").assign(k).name for k in KEYS[:5000]]
    b = [ExperimentRouter(VARIANTS, "exp-2").assign(k).name for k in KEYS[:5000]]
    moved = sum(x != y for x, y in zip(a, b, strict=True)) / len(a)
    assert 0.2 < moved < 0.45  # independent splits: 2 * 0.8 * 0.2 = 0.32 of the units change arm


def test_growing_a_variant_only_moves_units_into_it() -> None:
    before = ExperimentRouter([Variant("control", 90), Variant("treatment", 10)], "s")
    after = ExperimentRouter([Variant("control", 80), Variant("treatment", 20)], "s")
    moves = Counter((before.assign(k).name, after.assign(k).name) for k in KEYS)
    assert moves[("treatment", "control")] == 0  # a ramp-up never sends treated users back


def test_no_unit_key_gets_the_control_and_a_forced_variant_wins() -> None:
    router = ExperimentRouter(VARIANTS, "exp-1")
    assert router.route("").name == "control"
    assert router.route("user-1", "treatment").name == "treatment"
    with pytest.raises(InvalidRequestError, match="unknown variant 'nope'; configured: control, treatment"):
        router.route("user-1", "nope")


def test_a_variant_of_weight_zero_serves_only_requests_that_name_it() -> None:
    router = ExperimentRouter([Variant("qa", 0), Variant("control", 1), Variant("shadow", 0)], "s")
    assert {router.assign(k).name for k in KEYS[:5000]} == {"control"}
    assert router.route("").name == "control" and router.route("u", "shadow").name == "shadow"


def test_variants_name_the_model_per_task() -> None:
    v = Variant("v", similar="s", complementary="c", inspire="s")
    assert [v.model_for(t) for t in Task] == ["s", "c", "s"]
    assert Variant("w", similar="s").model_for(Task.COMPLEMENTARY) is None


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "at least one variant"),
        ([Variant("a"), Variant("a")], "unique"),
        ([Variant("a", 0)], "at least one > 0"),
        ([Variant("a", 1), Variant("b", -1)], "weights must be >= 0"),
    ],
)
def test_bad_experiments_are_config_errors(variants: list[Variant], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentRouter(variants)
