"""`vitrine eval retrieval` and `vitrine finetune-nli` argument handling and output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vitrine.errors import ConfigError


@pytest.mark.slow
def test_eval_retrieval_json_shape(
    run_cli: Callable[..., int], tiny_sick: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "result.json"
    code = run_cli(
        "eval", "retrieval", "--encoder", "minilm", "--dataset", f"sick:{tiny_sick}", "--json",
        "--no-progress", "--save", str(saved),
    )  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["metrics", "queries"]
    assert list(printed["metrics"]) == ["ndcg@10", "mrr@10", "recall@100", "alignment", "uniformity"]
    # Every premise of the tiny file has an entailed hypothesis: one query per distinct premise.
    assert printed["queries"] == 11
    assert 0.0 <= printed["metrics"]["ndcg@10"] <= 1.0 and printed["metrics"]["uniformity"] < 0
    record = json.loads(saved.read_text())
    assert record["metrics"] == printed["metrics"] and record["encoder"] == "minilm"


def test_bad_specs_are_config_errors(run_cli: Callable[..., int], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allowed: sick, snli, cdsc, ppc"):
        run_cli("finetune-nli", "--base", "minilm", "--nli", "mnli:/x", "--out", str(tmp_path))
    with pytest.raises(ConfigError, match="allowed: beir, cranfield"):
        run_cli("eval", "retrieval", "--encoder", "minilm", "--dataset", "msmarco:/x")


def test_missing_encoder_is_a_config_error(
    run_cli: Callable[..., int], tiny_sick: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers"):
        run_cli("eval", "retrieval", "--encoder", str(tmp_path), "--dataset", f"sick:{tiny_sick}")
