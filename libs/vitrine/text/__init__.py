"""Sentence encoders: offline loading, NLI fine-tuning, ONNX export and the serving-side `TextEmbedder`.

Public API (stable; other packages call these):

- `load_sentence_encoder(name_or_path: str) -> SentenceTransformer`: `minilm`, `e5-small`, a
  sentence-transformers directory, or a model name already in the local Hugging Face cache
  (`vitrine.text.encoders`).
- `TextEmbedder(model_dir, role="query").encode(texts: list[str]) -> np.ndarray`: float32,
  L2-normalised, shape (len(texts), dim), computed by onnxruntime from a directory written by
  `export_text_encoder` (`vitrine.text.embedder`). `role` picks the e5 prefix: `query` (`query: `,
  also right for symmetric uses such as product-title similarity and free-text intents) or
  `document` (`passage: `); models without prefixes ignore it.
- `export_text_encoder(name_or_path, out_dir)`: ONNX export (`vitrine.text.onnx_export`).
- `finetune(FinetuneConfig)`: NLI fine-tuning (`vitrine.text.nli_finetune`).

Heavy dependencies (torch, transformers, onnxruntime) are imported inside functions, so importing
this package stays cheap.
"""

from __future__ import annotations

from vitrine.text.embedder import TextEmbedder
from vitrine.text.encoders import load_sentence_encoder
from vitrine.text.nli_finetune import FinetuneConfig, finetune
from vitrine.text.onnx_export import export_text_encoder

__all__ = ["FinetuneConfig", "TextEmbedder", "export_text_encoder", "finetune", "load_sentence_encoder"]
