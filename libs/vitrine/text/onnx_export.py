"""Export a sentence encoder to ONNX for serving with onnxruntime (`vitrine.text.embedder`).

The graph takes `input_ids` and `attention_mask` (int64, batch x tokens) and returns
`sentence_embedding` (float32, batch x dim): the transformer, the model's pooling (mean or CLS) and,
when the model has one, its L2 normalisation. Tokenisation stays outside the graph, in the fast
`tokenizers` library. The export directory holds

    model.onnx          the graph (one file; weights inside)
    tokenizer.json      the model's tokenizer
    text_embedder.json  prompts (e5 `query: ` / `passage: `), max sequence length, padding, dim, source

Run as `python -m vitrine.text.onnx_export --encoder NAME|PATH --out DIR [--int8]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrine.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "text_embedder.json"
OPSET = 18


def _pooled_module(model: SentenceTransformer) -> torch.nn.Module:
    """transformer + pooling (+ normalisation) of `model` as one module of (input_ids, attention_mask)."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    modules = list(model)
    if not modules or not isinstance(modules[0], Transformer):
        raise ConfigError("ONNX export supports models whose first module is a Transformer")
    pooling = next((m for m in modules if isinstance(m, Pooling)), None)
    mode = getattr(pooling, "pooling_mode", None)
    if isinstance(mode, list | tuple):
        mode = mode[0] if len(mode) == 1 else None
    if mode not in ("mean", "cls"):
        raise ConfigError(f"ONNX export supports mean or cls pooling, got {mode!r}")
    normalize = any(isinstance(m, Normalize) for m in modules)
    backbone = modules[0].auto_model

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled

    return Pooled().eval()


def export_text_encoder(
    name_or_path: str | SentenceTransformer, out_dir: str | Path, max_seq_length: int | None = None
) -> Path:
    """Write `model.onnx`, `tokenizer.json` and `text_embedder.json` for the encoder into `out_dir`."""
    import torch
    from sentence_transformers import SentenceTransformer

    from vitrine.text.encoders import load_sentence_encoder

    model = (
        name_or_path if isinstance(name_or_path, SentenceTransformer) else load_sentence_encoder(name_or_path)
    )
    source = name_or_path if isinstance(name_or_path, str) else "in-memory model"
    model = model.to("cpu").eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = model.tokenizer
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise ConfigError("ONNX export needs a model with a fast (tokenizers) tokenizer")
    max_len = int(max_seq_length or model.max_seq_length or 512)

    pooled = _pooled_module(model)
    sample = tokenizer(
        ["a short sentence", "a somewhat longer second sentence here"], padding=True, return_tensors="pt"
    )
    args = (sample["input_ids"], sample["attention_mask"])
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1, max=max_len)
    with torch.no_grad(), warnings.catch_warnings():
        # Both inputs share the two dynamic axes on purpose; the exporter warns about exactly that.
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints.*")
        program = torch.onnx.export(
            pooled,
            args,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(out / MODEL_FILE), external_data=False)

    tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    config: dict[str, Any] = {
        "source": str(source),
        "dim": int(model.get_embedding_dimension() or 0),
        "max_seq_length": max_len,
        "prompts": {role: model.prompts.get(role) or "" for role in ("query", "document")},
        "pad_token": tokenizer.pad_token,
        "pad_token_id": int(tokenizer.pad_token_id),
        "inputs": ["input_ids", "attention_mask"],
        "output": "sentence_embedding",
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s to %s", source, out / MODEL_FILE)
    return out


def quantize_int8(export_dir: str | Path) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised at run time) -> `model_int8.onnx`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(export_dir) / MODEL_FILE
    dst = Path(export_dir) / INT8_FILE
    # Per-channel weight scales keep MiniLM's cosine to fp32 around 0.99 (per-tensor: about 0.97);
    # attention's activation x activation products stay float.
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitrine.text.onnx_export", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--encoder", required=True, help="minilm, e5-small, or a sentence-transformers directory"
    )
    parser.add_argument("--out", required=True, help="export directory")
    parser.add_argument("--max-seq-length", type=int, default=None, help="token limit (default: the model's)")
    parser.add_argument("--int8", action="store_true", help=f"also write {INT8_FILE} (dynamic int8)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    out = export_text_encoder(args.encoder, args.out, args.max_seq_length)
    if args.int8:
        quantize_int8(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
