"""Sentence vectors cached on disk: encoding a catalogue takes minutes on a CPU, and evaluations and
intent-tower training encode the same titles and intents again and again.

The cache key is the encoder's identity, the role (the e5 prefix) and the texts. A base encoder
(`minilm`, `e5-small`) is identified by its name (its weights come from a pinned package); a model
directory by its resolved path and the size and modification time of its files, so re-training a
model in place never serves stale vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitrine.text.encoders import BASE_ENCODERS, Role

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("VITRINE_CACHE", Path.home() / ".cache" / "vitrine")) / "vectors"


def encoder_identity(name_or_path: str) -> str:
    if name_or_path in BASE_ENCODERS:
        return name_or_path
    path = Path(name_or_path)
    if not path.exists():
        return name_or_path
    stamps = sorted(
        f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in path.rglob("*")
        if p.is_file()
    )
    return f"{path.resolve()}|" + ";".join(stamps)


def cache_file(cache_dir: Path, name_or_path: str, role: Role, texts: Sequence[str]) -> Path:
    digest = hashlib.sha256("\n".join([encoder_identity(name_or_path), role, *texts]).encode("utf-8"))
    label = Path(name_or_path).name if name_or_path not in BASE_ENCODERS else name_or_path
    return cache_dir / f"{label}-{role}-{digest.hexdigest()[:20]}.npy"


def encode_cached(
    name_or_path: str,
    texts: Sequence[str],
    role: Role,
    cache_dir: Path | None = DEFAULT_CACHE,
    encoder: object | None = None,
) -> np.ndarray:
    """float32 [n, dim] L2-normalised vectors of `texts` in `role`; read from / written to `cache_dir`
    (None: no cache). `encoder` reuses an already loaded sentence-transformers model."""
    path = None if cache_dir is None else cache_file(cache_dir, name_or_path, role, texts)
    if path is not None and path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    from vitrine.text.encoders import ROLES, encode, load_sentence_encoder, prompt_for

    model = encoder if encoder is not None else load_sentence_encoder(name_or_path)
    if path is not None:
        # an encoder without prompts (MiniLM) gives the same vectors in every role: reuse them
        for other in ROLES:
            twin = cache_file(cache_dir, name_or_path, other, texts)  # type: ignore[arg-type]
            if other != role and twin.is_file() and prompt_for(model, other) == prompt_for(model, role):  # type: ignore[arg-type]
                vectors = np.load(twin)
                if vectors.shape[0] == len(texts):
                    return vectors
    log.info("encoding %d texts with %s (%s)", len(texts), name_or_path, role)
    vectors = encode(model, list(texts), role, batch_size=64)  # type: ignore[arg-type]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors
