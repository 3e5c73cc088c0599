"""The model card `DIR/model.json`: what serving, evaluation and people need to know about a model.

No torch here: serving reads the card. Files in a model directory:

    model.json                        this card (features config = the preprocessing serving must repeat)
    weights.pt                        torch state dict (training / export only)
    centroids.npy                     k-means centroids of the item space [k, dim] (inspirational serving)
    item_tower.onnx                   written by `vitrine export`
    query_tower_complementary.onnx    written by `vitrine export` (complementary models)
    lexical.json                      idf table (retrieval.lexical_text) for hybrid complementary scoring
    intent_tower.pt                   intent tower weights (`vitrine train --task intent --model DIR`)
    intent_tower.onnx                 written by `vitrine export` when the model has an intent tower
    intent_text_encoder/              its sentence encoder, exported for onnxruntime (`vitrine.text`)
    intent_lexical.json               idf table (title + category path) for re-scoring intent candidates
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitrine.errors import DataError

CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
CENTROIDS_FILE = "centroids.npy"
ITEM_TOWER_FILE = "item_tower.onnx"
COMPLEMENTARY_QUERY_FILE = "query_tower_complementary.onnx"
INTENT_WEIGHTS_FILE = "intent_tower.pt"
INTENT_TOWER_FILE = "intent_tower.onnx"
INTENT_TEXT_ENCODER_DIR = "intent_text_encoder"
INTENT_LEXICAL_FILE = "intent_lexical.json"
FORMAT_VERSION = 1


@dataclass(slots=True)
class ModelCard:
    model_version: str
    task: str
    dim: int
    untrained: bool
    created_at: str
    features: dict[str, Any]
    encoder: dict[str, Any]
    train: dict[str, Any]
    complementary_map: dict[str, list[str]] = field(default_factory=dict)
    category_prior: dict[str, Any] = field(default_factory=dict)  # CategoryPrior.to_dict()
    retrieval: dict[str, Any] = field(default_factory=dict)  # RetrievalConfig.to_dict() (complementary)
    pairs: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    category_map: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    # the intent tower added to this model's item space (vitrine.model.intent_pipeline); {} = none
    intent: dict[str, Any] = field(default_factory=dict)
    # how the weights came about: "trained" (on behaviour pairs), "zero_data" (built without pairs:
    # vitrine.model.zero_data), "untrained" (random, smoke tests); "" in cards written before the field
    kind: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def model_kind(self) -> str:
        return self.kind or ("untrained" if self.untrained else "trained")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise DataError(f"model card format {values['format_version']} is not {FORMAT_VERSION}")
        return cls(**values)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / CARD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)  # a reader never sees a half-written card
        return path


def read_card(model_dir: str | Path) -> ModelCard:
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise DataError(f"no model card at {path} (train a model with `vitrine train --out DIR`)")
    try:
        return ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"unreadable model card {path}: {e}") from e


def make_model_version(task: str, content: bytes, now: datetime | None = None) -> str:
    """`<task>-<yyyymmddHHMMSS>-<8 hex of the weights' hash>`: unique per trained model."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"{task}-{stamp}-{hashlib.sha256(content).hexdigest()[:8]}"
