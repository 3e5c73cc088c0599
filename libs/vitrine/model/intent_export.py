"""ONNX export of the intent tower: its sentence encoder and its projection, each checked for parity.

Writes `DIR/intent_text_encoder/` (the sentence encoder as `vitrine.text.export_text_encoder` writes
it, read by `TextEmbedder`) and `DIR/intent_tower.onnx` (`text_vec` → `vector`). Parity: the ONNX
sentence encoder against sentence-transformers, the ONNX projection against torch, and the whole
chain (text → item space) against the torch chain, on the same texts; each below PARITY_TOLERANCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vitrine.model.card import INTENT_TEXT_ENCODER_DIR, INTENT_TOWER_FILE, ModelCard
from vitrine.model.export import PARITY_TOLERANCE, ExportError, ParityResult, _export, check_parity
from vitrine.model.intent import IntentTower
from vitrine.model.intent_pipeline import load_intent_tower
from vitrine.model.intent_serving import INTENT_INPUT

# Parity texts besides the catalogue's titles: intents as shoppers write them, in two languages.
PARITY_INTENTS = (
    "gift for a runner",
    "Car sound system and radio set up",
    "Local area network for home or office",
    "prezent dla biegacza",
    "x",
)


class _Projection(nn.Module):
    """The tower with an explicit `text_vec` signature (torch.export names the ONNX input by it)."""

    def __init__(self, tower: IntentTower) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, text_vec: Tensor) -> Tensor:
        return self.tower(text_vec)


def export_intent_tower(
    card: ModelCard, model_dir: Path, texts: Sequence[str]
) -> tuple[dict[str, str], list[ParityResult]]:
    """Write the intent tower's exports into `model_dir`; returns the files and the parity results."""
    from vitrine.text import TextEmbedder, export_text_encoder
    from vitrine.text.encoders import encode, load_sentence_encoder

    config, tower = load_intent_tower(model_dir, card)
    sample = [*PARITY_INTENTS, *[t for t in texts if t][:64]]
    encoder = load_sentence_encoder(config.text_encoder)
    expected_text = encode(encoder, sample, "query")
    text_dir = Path(model_dir) / INTENT_TEXT_ENCODER_DIR
    export_text_encoder(encoder, text_dir)
    got_text = TextEmbedder(text_dir, role="query").encode(sample)
    text_diff = float(np.abs(got_text - expected_text).max())
    if text_diff >= PARITY_TOLERANCE:
        raise ExportError(
            f"intent text encoder: onnxruntime differs from sentence-transformers by {text_diff:.2e}"
        )

    module = _Projection(tower).eval()
    inputs = {INTENT_INPUT: torch.from_numpy(expected_text)}
    path = Path(model_dir) / INTENT_TOWER_FILE
    _export(module, (inputs[INTENT_INPUT],), [INTENT_INPUT], path, target=False)
    parity = [
        ParityResult("intent_text_encoder", text_diff, len(sample)),
        check_parity(module, path, inputs, None, "intent_tower"),
        _chain_parity(module, path, got_text, expected_text),
    ]
    return {"intent_tower": INTENT_TOWER_FILE, "intent_text_encoder": INTENT_TEXT_ENCODER_DIR}, parity


def _chain_parity(
    module: nn.Module, path: Path, onnx_text: np.ndarray, torch_text: np.ndarray
) -> ParityResult:
    """Text → item space end to end: ONNX encoder + ONNX projection against the torch chain."""
    import onnxruntime as ort

    session: Any = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["vector"], {INTENT_INPUT: onnx_text})[0]
    with torch.no_grad():
        expected = module(torch.from_numpy(torch_text)).numpy()
    diff = float(np.abs(got - expected).max())
    if diff >= PARITY_TOLERANCE:
        raise ExportError(f"intent tower end to end: onnxruntime differs from torch by {diff:.2e}")
    return ParityResult("intent_chain", diff, len(onnx_text))
