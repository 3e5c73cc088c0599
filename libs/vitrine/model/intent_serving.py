"""Serving side of the intent tower: the exported sentence encoder + the projection, with onnxruntime.

    tower = IntentEncoder(model_dir, card)        # card.intent and card.files name the exports
    vectors = tower.encode(["gift for a runner"])   # float32 [n, dim], L2-normalised, item space

No torch: the recommender loads this through `vitrine.model.inference.InferenceModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitrine.errors import DataError
from vitrine.model.card import INTENT_TEXT_ENCODER_DIR, INTENT_TOWER_FILE, ModelCard

INTENT_INPUT = "text_vec"
INTENT_OUTPUT = "vector"


def has_intent_export(model_dir: Path, card: ModelCard) -> bool:
    """Whether `vitrine export` wrote the model's intent tower (a trained but unexported one is ignored)."""
    files = card.export.get("files", {})
    return (
        bool(card.intent) and "intent_tower" in files and (Path(model_dir) / files["intent_tower"]).is_file()
    )


class IntentEncoder:
    def __init__(self, model_dir: Path, card: ModelCard, threads: int = 0) -> None:
        import onnxruntime as ort

        from vitrine.text.embedder import TextEmbedder

        files = card.export.get("files", {})
        tower_path = Path(model_dir) / files.get("intent_tower", INTENT_TOWER_FILE)
        text_dir = Path(model_dir) / files.get("intent_text_encoder", INTENT_TEXT_ENCODER_DIR)
        if not tower_path.is_file() or not text_dir.is_dir():
            raise DataError(
                f"no intent tower export in {model_dir}; run `vitrine export --model {model_dir}`"
            )
        self.version: str = str(card.intent.get("version", ""))
        self.text_encoder: str = str(card.intent.get("config", {}).get("text_encoder", ""))
        self.dim = int(card.dim)
        self._text = TextEmbedder(text_dir, role="query", threads=threads or None)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        self._session: Any = ort.InferenceSession(
            str(tower_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [n, dim] item-space vectors of free-text intents (n may be 0)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        text_vec = self._text.encode(list(texts))
        return np.asarray(self._session.run([INTENT_OUTPUT], {INTENT_INPUT: text_vec})[0], dtype=np.float32)
