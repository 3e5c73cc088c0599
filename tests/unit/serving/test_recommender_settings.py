"""Recommender settings for models and experiments: the single `model_dir` of old still works; models
and variants come from the YAML file or JSON in the environment; mistakes name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine.config import load_settings
from vitrine.errors import ConfigError
from vitrine.serving.experiments import Variant
from vitrine_services.recommender.settings import RecommenderSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VITRINE_CONFIG", raising=False)
    for name in ("MODEL_DIR", "MODELS", "VARIANTS", "COMPLEMENTARY_MODEL_DIR"):
        monkeypatch.delenv(f"VITRINE_RECOMMENDER_{name}", raising=False)


def test_a_single_model_dir_serves_one_default_variant_from_the_configured_topic() -> None:
    s = RecommenderSettings(model_dir=Path("/m"), vectors_topic="catalog.vectors")
    (spec,) = s.model_specs()
    assert (spec.name, spec.model_dir, spec.topic("v9"), spec.collection("v9")) == (
        "default",
        Path("/m"),
        "catalog.vectors",
        "vitrine",
    )
    assert s.resolved_variants({"default": "similar"}) == [
        Variant("default", 1.0, similar="default", complementary=None, inspire="default")
    ]


def test_a_complementary_model_reads_its_own_versioned_topic() -> None:
    s = RecommenderSettings(model_dir=Path("/s"), complementary_model_dir=Path("/c"))
    specs = {m.name: m for m in s.model_specs()}
    assert specs["complementary"].topic("complementary-v2") == "catalog.vectors.complementary-v2"
    assert specs["complementary"].collection("complementary-v2") == "vitrine-complementary-v2"
    (variant,) = s.resolved_variants({"default": "similar", "complementary": "complementary"})
    assert (variant.similar, variant.complementary, variant.inspire) == (
        "default",
        "complementary",
        "default",
    )


def test_models_and_variants_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text(
        """
recommender:
  models:
    - {name: sim-a, model_dir: /models/a}
    - {name: sim-b, model_dir: /models/b, vectors_topic: vectors.b}
    - {name: compl, model_dir: /models/c}
  variants:
    - {name: control, weight: 90, similar: sim-a, complementary: compl}
    - {name: treatment, weight: 10, similar: sim-b, complementary: compl, inspire: sim-a}
  experiment_salt: exp-7
"""
    )
    s = load_settings(RecommenderSettings, config, "recommender")
    assert [m.name for m in s.model_specs()] == ["sim-a", "sim-b", "compl"]
    assert s.model_specs()[1].topic("x") == "vectors.b" and s.experiment_salt == "exp-7"
    control, treatment = s.resolved_variants(
        {"sim-a": "similar", "sim-b": "similar", "compl": "complementary"}
    )
    assert control == Variant("control", 90, "sim-a", "compl", "sim-a")  # inspire defaults to similar
    assert treatment == Variant("treatment", 10, "sim-b", "compl", "sim-a")


def test_models_as_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_RECOMMENDER_MODELS", json.dumps([{"name": "a", "model_dir": "/a"}]))
    monkeypatch.setenv("VITRINE_RECOMMENDER_VARIANTS", json.dumps([{"name": "only", "similar": "a"}]))
    s = load_settings(RecommenderSettings, None, "recommender")
    assert [v.name for v in s.resolved_variants({"a": "similar"})] == ["only"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("grpc_port: 1", r"variants \(env VITRINE_RECOMMENDER_VARIANTS\).*no model"),
        (
            "model_dir: /m\n  models: [{name: default, model_dir: /x}]",
            "model names must be unique; repeated: default",
        ),
        (
            "model_dir: /m\n  variants: [{name: v, similar: nope}]",
            "variant 'v': similar model 'nope' is not one of",
        ),
        (
            "model_dir: /m\n  variants: [{name: v, weight: -1, similar: default}]",
            "greater than or equal to 0",
        ),
        ("model_dir: /m\n  variants: [{name: v}]", "serves no task"),
        ("model_dir: /m\n  models: [{name: 'bad name', model_dir: /x}]", "pattern"),
        ("model_dir: /m\n  models: [{name: x, model_dir: /x, colour: red}]", "colour"),
    ],
)
def test_bad_model_settings_are_reported_at_start(tmp_path: Path, section: str, message: str) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text(f"recommender:\n  {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(RecommenderSettings, config, "recommender")


def test_a_variant_must_use_a_model_of_the_right_task() -> None:
    s = RecommenderSettings(
        model_dir=Path("/s"),
        complementary_model_dir=Path("/c"),
        variants=[{"name": "v", "similar": "complementary"}],  # type: ignore[list-item]
    )
    with pytest.raises(
        ConfigError, match="variant 'v': similar model 'complementary' is a 'complementary' model"
    ):
        s.resolved_variants({"default": "similar", "complementary": "complementary"})


class _FeedWithWorkLeft:
    """What `startup_allowance_s` reads of a served model: the records its feed has still to apply."""

    def __init__(self, left: int | None) -> None:
        self.left = left

    def work_left(self) -> int | None:
        return self.left


def test_the_startup_allowance_covers_a_cold_million_record_rebuild_with_headroom() -> None:
    from vitrine_services.recommender.service import startup_allowance_s

    s = RecommenderSettings(model_dir=Path("/m"))
    # docs/BENCHMARKS.md "Recommender restart": a cold 1M rebuild took 999 s on a quiet 2-core machine;
    # the old floor (1,000 records/s: 1,300 s) left a loaded node 30 % headroom before it crash-looped
    allowed = startup_allowance_s(s, [_FeedWithWorkLeft(600_000), _FeedWithWorkLeft(400_000)])
    assert allowed == pytest.approx(300 + 1_000_000 / 250) and allowed >= 3 * 999
    # a resumed restart (nothing left, or a feed that does not know yet) gets the base timeout
    assert startup_allowance_s(s, [_FeedWithWorkLeft(0), _FeedWithWorkLeft(None)]) == s.startup_timeout_s
