"""ONNX export of a (fine-tuned) text encoder: parity with torch, the TextEmbedder contract, int8 drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vitrine.errors import ConfigError
from vitrine.text.embedder import TextEmbedder
from vitrine.text.encoders import encode, load_sentence_encoder

TEXTS = [
    "Wireless noise-cancelling headphones with 30 h battery",
    "A man is playing a guitar",
    "Słuchawki bezprzewodowe z redukcją szumów",
    "ok",
    "a long product description " * 40,
]


@pytest.fixture(scope="module")
def exported(quick_tuned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrine.text.onnx_export import export_text_encoder, quantize_int8

    out = export_text_encoder(
        str(quick_tuned), tmp_path_factory.mktemp("onnx") / "export", max_seq_length=128
    )
    quantize_int8(out)
    return out


@pytest.mark.slow
def test_onnx_matches_torch(exported: Path, quick_tuned: Path) -> None:
    model = load_sentence_encoder(str(quick_tuned))
    model.max_seq_length = 128
    expected = encode(model, TEXTS, "query")
    got = TextEmbedder(exported).encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_int8_drift_is_small(exported: Path) -> None:
    fp32 = TextEmbedder(exported).encode(TEXTS)
    int8 = TextEmbedder(exported, file_name="model_int8.onnx").encode(TEXTS)
    cosine = np.sum(fp32 * int8, axis=1)
    assert cosine.min() > 0.95, cosine


@pytest.mark.slow
def test_roles_apply_the_stored_prefixes(exported: Path, tmp_path: Path) -> None:
    # MiniLM has no prefixes; give a copy of the export e5-style ones to check that roles use them.
    copy = Path(shutil.copytree(exported, tmp_path / "prefixed"))
    config = json.loads((copy / "text_embedder.json").read_text())
    config["prompts"] = {"query": "query: ", "document": "passage: "}
    (copy / "text_embedder.json").write_text(json.dumps(config))
    plain = TextEmbedder(exported)
    text = "Pożar został natychmiast ugaszony."
    np.testing.assert_allclose(
        TextEmbedder(copy, role="query").encode([text]), plain.encode(["query: " + text]), atol=1e-6
    )
    np.testing.assert_allclose(
        TextEmbedder(copy, role="document").encode([text]), plain.encode(["passage: " + text]), atol=1e-6
    )


@pytest.mark.slow
def test_embedder_edge_cases(exported: Path, tmp_path: Path) -> None:
    embedder = TextEmbedder(exported, batch_size=2)
    assert embedder.encode([]).shape == (0, 384)
    # Batching does not change results.
    np.testing.assert_allclose(embedder.encode(TEXTS), TextEmbedder(exported).encode(TEXTS), atol=1e-5)
    with pytest.raises(TypeError):
        embedder.encode("not a list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query"):
        TextEmbedder(exported, role="passage")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="missing"):
        TextEmbedder(tmp_path)
