"""The sentence-vector cache: keyed by encoder, role and texts; roles with the same prompt share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitrine.text.cache import cache_file, encode_cached


def test_vectors_are_cached_per_role_and_texts(tmp_path: Path, minilm: object) -> None:
    texts = ["usb cable", "wireless mouse"]
    first = encode_cached("minilm", texts, "query", tmp_path, minilm)
    path = cache_file(tmp_path, "minilm", "query", texts)
    assert path.is_file() and first.shape == (2, 384)
    # a marker written into the cache file is what comes back: the second call did not re-encode
    np.save(path, np.full_like(first, 0.5))
    assert np.all(encode_cached("minilm", texts, "query", tmp_path, minilm) == 0.5)
    assert cache_file(tmp_path, "minilm", "query", [*texts, "x"]) != path


def test_an_encoder_without_prompts_reuses_the_other_roles_vectors(tmp_path: Path, minilm: object) -> None:
    """MiniLM has no query/document prompts: its document vectors are its query vectors (the
    catalogue's titles are encoded once, not once per role)."""
    texts = ["hdmi cable", "laptop stand"]
    query = encode_cached("minilm", texts, "query", tmp_path, minilm)
    np.save(cache_file(tmp_path, "minilm", "query", texts), query * 0 + 0.25)
    assert np.all(encode_cached("minilm", texts, "document", tmp_path, minilm) == 0.25)
