"""`TextEmbedder`: sentence embeddings from an ONNX export, with onnxruntime and `tokenizers` only.

Stable interface (the Product Encoder's text branch and the recommender's free-text intents use it):

    embedder = TextEmbedder("artifacts/text/minilm-nli/onnx", role="query")
    vectors = embedder.encode(["wireless earbuds", "running shoes"])  # float32, (2, dim), unit rows

`model_dir` is a directory written by `vitrine.text.onnx_export.export_text_encoder`. `role` chooses
the e5 prefix stored with the export: `"query"` (`query: `; also the right one for symmetric uses,
for example product-title similarity and free-text intents) or `"document"` (`passage: `, for texts
searched by queries). Models exported without prefixes (MiniLM) ignore `role`. Texts longer than the
export's `max_seq_length` tokens are truncated. `file_name="model_int8.onnx"` loads the int8 variant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.errors import ConfigError
from vitrine.text.encoders import ROLES, Role
from vitrine.text.onnx_export import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE
from vitrine.threads import onnx_session_options


class TextEmbedder:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        role: Role = "query",
        file_name: str = MODEL_FILE,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(model_dir)
        missing = [f for f in (file_name, TOKENIZER_FILE, CONFIG_FILE) if not (directory / f).is_file()]
        if missing:
            raise ConfigError(f"{directory} is not a text encoder export (missing {', '.join(missing)})")
        self.config: dict[str, Any] = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        self.role = role
        self.prefix: str = self.config["prompts"].get(role, "")
        self.batch_size = batch_size
        self.dim: int = int(self.config["dim"])
        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(max_length=int(self.config["max_seq_length"]))
        self._tokenizer.enable_padding(
            pad_id=int(self.config["pad_token_id"]), pad_token=self.config["pad_token"]
        )
        options = onnx_session_options(threads or 0)
        self._session = ort.InferenceSession(
            str(directory / file_name), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings, not a string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = [self.prefix + t for t in texts[start : start + self.batch_size]]
            encodings = self._tokenizer.encode_batch(batch)
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            }
            (vectors,) = self._session.run(["sentence_embedding"], feeds)
            out[start : start + len(batch)] = vectors
        # The graph normalises already; renormalising guards exports of models without a Normalize module.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)
