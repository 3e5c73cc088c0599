"""The `sentence` text branch's input: frozen sentence-encoder vectors, from `vitrine.text`.

Loading encoders (`minilm`, `e5-small`, a path), their ONNX export and the onnxruntime
`TextEmbedder` belong to `vitrine.text`; this module only asks it for vectors of product texts.
Training uses the sentence-transformers model (torch); serving uses the ONNX export that `vitrine
export` writes to `DIR/text_encoder/`, and the export checks that the two agree.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.catalog.schema import Product
from vitrine.errors import ConfigError

log = logging.getLogger(__name__)

TEXT_ENCODER_DIR = "text_encoder"
ROLE = "query"  # e5: the prefix for symmetric uses (product-to-product similarity)


def load_text_encoder(name_or_path: str) -> Any:
    """A sentence-transformers model via `vitrine.text.load_sentence_encoder` (offline)."""
    from vitrine.text import load_sentence_encoder

    return load_sentence_encoder(name_or_path)


def encoder_dimension(encoder: Any) -> int:
    dim = encoder.get_embedding_dimension()
    if not dim:
        raise ConfigError("the sentence encoder does not report its embedding dimension")
    return int(dim)


def encode_texts(encoder: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """float32 [n, d] L2-normalised vectors (with the encoder's `query` prefix, if it has one)."""
    from vitrine.text.encoders import encode

    return encode(encoder, list(texts), ROLE, batch_size=batch_size)


def cached_sentence_vectors(
    name_or_path: str, texts: Sequence[str], cache_dir: Path | None, encoder: Any = None
) -> np.ndarray:
    """`encode_texts` of `texts`, cached in `cache_dir` by a hash of the encoder name and the texts
    (a catalogue takes minutes on a CPU; training and evaluation reuse the vectors)."""
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256("\n".join([name_or_path, *texts]).encode("utf-8")).hexdigest()[:16]
        path = Path(cache_dir) / f"{name_or_path.replace('/', '_')}-{digest}.npy"
        if path.is_file():
            return np.load(path)
    log.info("encoding %d texts with %s", len(texts), name_or_path)
    vectors = encode_texts(encoder if encoder is not None else load_text_encoder(name_or_path), texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def sentence_vectors(
    products: Sequence[Product], config: FeatureConfig, encoder: Any = None, cache_dir: Path | None = None
) -> np.ndarray:
    """The `text_vec` input of the item tower for `products`."""
    if not config.sentence_encoder:
        raise ConfigError("FeatureConfig.sentence_encoder is empty; name the sentence encoder to use")
    extractor = FeatureExtractor(config)
    texts = [extractor.sentence_text(p) for p in products]
    vectors = cached_sentence_vectors(config.sentence_encoder, texts, cache_dir, encoder)
    if len(products) and vectors.shape[1] != config.sentence_dim:
        raise ConfigError(
            f"sentence encoder gives {vectors.shape[1]} dims, config says {config.sentence_dim}"
        )
    return vectors
