"""Serving side of the intent tower: the exported sentence encoder + the projection, with onnxruntime.

    tower = IntentEncoder(model_dir, card)        # card.intent and card.files name the exports
    vectors = tower.encode(["gift for a runner"])   # float32 [n, dim], L2-normalised, item space
    tower.rescoring, tower.lexical                  # hybrid re-scoring of its candidates (or None)

No torch: the recommender loads this through `vitrine.model.inference.InferenceModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.errors import DataError
from vitrine.model.card import INTENT_LEXICAL_FILE, INTENT_TEXT_ENCODER_DIR, INTENT_TOWER_FILE, ModelCard
from vitrine.model.lexical import ProductTfidf

INTENT_INPUT = "text_vec"
INTENT_OUTPUT = "vector"


@dataclass(frozen=True, slots=True)
class IntentRescoring:
    """Hybrid scoring of an intent's nearest items: the tower's `depth` nearest candidates are
    re-ranked by (q.v + lexical_weight x TF-IDF cosine of the intent and the candidate's title +
    category path) / (1 + lexical_weight). Defaults chosen on validation intents (docs/EVALUATION.md)."""

    depth: int = 1000
    lexical_weight: float = 4.0

    def __post_init__(self) -> None:
        if self.depth < 1 or not self.lexical_weight >= 0:
            raise ValueError(
                f"rescoring depth must be >= 1 and lexical_weight >= 0, got {self.depth}, {self.lexical_weight}"
            )

    def overridden(self, depth: int | None = None, lexical_weight: float | None = None) -> IntentRescoring:
        """This one with the given fields replaced (None keeps a field; CLI overrides)."""
        return IntentRescoring(
            self.depth if depth is None else depth,
            self.lexical_weight if lexical_weight is None else lexical_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "lexical_weight": self.lexical_weight}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentRescoring:
        return cls(int(data["depth"]), float(data["lexical_weight"]))


def has_intent_export(model_dir: Path, card: ModelCard) -> bool:
    """Whether `vitrine export` wrote the model's intent tower (a trained but unexported one is ignored)."""
    files = card.export.get("files", {})
    return (
        bool(card.intent) and "intent_tower" in files and (Path(model_dir) / files["intent_tower"]).is_file()
    )


class IntentEncoder:
    def __init__(
        self, model_dir: Path, card: ModelCard, threads: int = 0, rescoring: bool | IntentRescoring = True
    ) -> None:
        """`rescoring`: True = the card's, False = none, an IntentRescoring = that one (the
        evaluation's knobs for choosing the card's on validation)."""
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
        # a tower trained before re-scoring existed, or with lexical_weight 0, serves its vector alone
        # (as does rescoring=False: the evaluation's "intent_tower_alone" row)
        record = card.intent.get("rescoring")
        lexical_path = Path(model_dir) / card.files.get("intent_lexical", INTENT_LEXICAL_FILE)
        self.rescoring: IntentRescoring | None = None
        self.lexical: ProductTfidf | None = None
        chosen = IntentRescoring.from_dict(record) if rescoring is True and record else rescoring
        if isinstance(chosen, IntentRescoring) and chosen.lexical_weight > 0:
            if not lexical_path.is_file():
                raise DataError(f"the intent tower re-scores with {lexical_path}, which is missing")
            self.rescoring = chosen
            self.lexical = ProductTfidf.load(lexical_path)

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [n, dim] item-space vectors of free-text intents (n may be 0)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        text_vec = self._text.encode(list(texts))
        return np.asarray(self._session.run([INTENT_OUTPUT], {INTENT_INPUT: text_vec})[0], dtype=np.float32)
