"""Service configuration: file < environment < flags, validated at start with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.config import load_settings
from vitrine.errors import ConfigError
from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.recommender.settings import RecommenderSettings


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text("encoder:\n  model_dir: /models/a\n  max_batch: 100\n  max_wait_ms: 10\n")
    monkeypatch.setenv("VITRINE_ENCODER_MAX_BATCH", "200")
    settings = load_settings(EncoderSettings, config, "encoder", max_wait_ms=30)
    assert settings.model_dir == Path("/models/a")  # from the file
    assert settings.max_batch == 200  # the environment beats the file
    assert settings.max_wait_ms == 30  # a flag beats both


def test_bad_values_name_the_field_and_its_environment_variable(tmp_path: Path) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text("encoder:\n  model_dir: /m\n  max_batch: 0\n")
    with pytest.raises(ConfigError, match=r"max_batch \(env VITRINE_ENCODER_MAX_BATCH\)"):
        load_settings(EncoderSettings, config, "encoder")


def test_unknown_settings_in_the_file_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text("recommender:\n  model_dir: /m\n  grcp_port: 1\n")
    with pytest.raises(ConfigError, match="grcp_port"):
        load_settings(RecommenderSettings, config, "recommender")


def test_missing_file_and_invalid_yaml_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(EncoderSettings, tmp_path / "nope.yaml", "encoder")
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(EncoderSettings, bad, "encoder")


def test_required_model_dir_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VITRINE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="model_dir"):
        load_settings(EncoderSettings, None, "encoder")


def test_backfill_names_a_new_index_per_model_version() -> None:
    live = EncoderSettings(model_dir=Path("/m"))
    backfill = EncoderSettings(model_dir=Path("/m"), backfill=True)
    assert live.resolved_vectors_topic("v2") == "catalog.vectors"
    assert live.resolved_group_id("v2") == "vitrine-encoder"
    assert backfill.resolved_vectors_topic("v2") == "catalog.vectors.v2"
    assert backfill.resolved_group_id("v2") == "vitrine-encoder-v2"
    assert backfill.resolved_collection("v2") == "vitrine-v2"
    explicit = EncoderSettings(model_dir=Path("/m"), backfill=True, vectors_topic="mine", group_id="g")
    assert (explicit.resolved_vectors_topic("v2"), explicit.resolved_group_id("v2")) == ("mine", "g")


def test_both_services_read_the_same_index_settings_under_their_own_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vitrine.yaml"
    config.write_text(
        "encoder:\n  model_dir: /m\n  index_mode: server\n"
        "recommender:\n  model_dir: /m\n  index_mode: server\n"
    )
    monkeypatch.setenv("VITRINE_RECOMMENDER_QDRANT_URL", "http://qdrant:6333")
    encoder = load_settings(EncoderSettings, config, "encoder")
    recommender = load_settings(RecommenderSettings, config, "recommender")
    assert encoder.index_mode == recommender.index_mode == "server"
    assert recommender.qdrant_url == "http://qdrant:6333" and encoder.qdrant_url == "http://127.0.0.1:6333"
    # the live model: the encoder writes a versioned collection, readers read the alias moved to it
    assert encoder.resolved_collection("v7") == "vitrine-v7"
    assert recommender.model_specs()[0].collection("v7") == "vitrine"
    # a backfill writes exactly where the recommender's extra models read
    backfill = EncoderSettings(model_dir=Path("/m"), backfill=True)
    extra = RecommenderSettings(models=[{"name": "b", "model_dir": "/b"}])  # type: ignore[list-item]
    assert backfill.resolved_vectors_topic("v8") == extra.model_specs()[0].topic("v8") == "catalog.vectors.v8"
    assert backfill.resolved_collection("v8") == extra.model_specs()[0].collection("v8") == "vitrine-v8"
    assert "VITRINE_ENCODER_INDEX_MODE" in (EncoderSettings.model_fields["index_mode"].description or "")


@pytest.mark.parametrize(("sink", "mode"), [("kafka", "embedded"), ("qdrant", "server")])
def test_the_former_sink_setting_still_chooses_the_index_mode(
    sink: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITRINE_ENCODER_SINK", sink)
    assert load_settings(EncoderSettings, None, "encoder", model_dir=Path("/m")).index_mode == mode
    other = "server" if mode == "embedded" else "embedded"
    with pytest.raises(ConfigError, match="VITRINE_ENCODER_INDEX_MODE"):
        load_settings(EncoderSettings, None, "encoder", model_dir=Path("/m"), index_mode=other)
