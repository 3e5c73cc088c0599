"""The E5S1 reader and Q4_0 decoding on small files written here, and the charsmap builder."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from vitrine.errors import DataError
from vitrine.text.charsmap import build_precompiled_charsmap
from vitrine.text.q4_file import dequantize_q4_0, read_q4_model


def quantize_q4_0(values: np.ndarray) -> bytes:
    """Reference encoder: per 32-value block, scale = max|x| / 7 and nibble = round(x / scale) + 8."""
    out = bytearray()
    for block in values.reshape(-1, 32):
        scale = np.float16(np.abs(block).max() / 7 or 1.0)
        q = np.clip(np.round(block / np.float32(scale)) + 8, 0, 15).astype(np.uint8)
        out += scale.tobytes() + bytes((q[:16] | (q[16:] << 4)).tolist())
    return bytes(out)


def test_dequantize_one_block_by_hand() -> None:
    nibbles = bytes(((15 - j) << 4) | j for j in range(16))  # low nibble j, high nibble 15 - j
    raw = np.float16(0.5).tobytes() + nibbles
    values = dequantize_q4_0(raw, (32,))
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert values.tolist() == expected


def test_dequantize_round_trips_the_reference_encoder() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(4, 64)).astype(np.float32) * np.float32(0.25)
    q.reshape(-1, 32)[:, 0] = 7 * 0.25  # the block maximum fixes the scale at exactly 0.25
    np.testing.assert_array_equal(dequantize_q4_0(quantize_q4_0(q), (4, 64)), q)
    with pytest.raises(DataError, match="multiple of 32"):
        dequantize_q4_0(b"", (3, 10))
    with pytest.raises(DataError, match="needs"):
        dequantize_q4_0(b"\0" * 17, (32,))


def write_e5s1(path: Path, tensors: dict[str, np.ndarray], q4: set[str]) -> None:
    """A minimal E5S1 file in the layout e5.c reads."""
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b", "<mask>"]
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = {0x09: " ", 0x07: "", 0xFF21: "A"}
    norm_bytes = b"".join(
        struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
        for cp, out in norm.items()
    )
    head = b"E5S1" + struct.pack("<I7ifi", 1, 32, 1, 2, 64, 7, 16, 2, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob))
    head += offsets.tobytes() + np.linspace(0, -1, len(pieces), dtype="<f4").tobytes() + blob
    head += struct.pack("<iI", len(norm), len(norm_bytes)) + norm_bytes
    payloads = {n: quantize_q4_0(v) if n in q4 else v.astype("<f4").tobytes() for n, v in tensors.items()}
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n in tensors)
    offset = len(head) + directory_size
    directory = struct.pack("<i", len(tensors))
    for name, value in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<B", int(name in q4))
        directory += struct.pack("<IQQ", value.size, offset, len(payloads[name]))
        offset += len(payloads[name])
    path.write_bytes(head + directory + b"".join(payloads.values()))


def test_reader_parses_header_vocabulary_map_and_tensors(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    word = rng.integers(-7, 8, size=(7, 32)).astype(np.float32) / 4
    pos = rng.normal(size=(16, 32)).astype(np.float32)
    path = tmp_path / "tiny.bin"
    write_e5s1(path, {"emb.word": word, "emb.pos": pos}, q4={"emb.word"})
    model = read_q4_model(path)
    assert (model.header.hidden, model.header.layers, model.header.heads, model.header.ffn) == (32, 1, 2, 64)
    assert (model.header.vocab_rows, model.header.max_positions, model.header.type_vocab) == (7, 16, 2)
    assert (model.special.bos, model.special.eos, model.special.pad, model.special.unk) == (0, 2, 1, 3)
    assert model.pieces[4] == "▁a" and model.pieces[-1] == "<mask>"
    assert model.norm_map == {0x09: " ", 0x07: "", 0xFF21: "A"}
    np.testing.assert_array_equal(model.tensor("emb.word", (7, 32)), word)
    np.testing.assert_array_equal(model.tensor("emb.pos", (16, 32)), pos)
    with pytest.raises(DataError, match="no tensor"):
        model.tensor("l0.q.w", (32, 32))
    with pytest.raises(DataError, match="not shape"):
        model.tensor("emb.pos", (8, 32))


def test_reader_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(DataError, match="not an E5S1"):
        read_q4_model(tmp_path / "x.bin")
    (tmp_path / "short.bin").write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 8)
    with pytest.raises(DataError, match="truncated"):
        read_q4_model(tmp_path / "short.bin")


def test_precompiled_charsmap_normalises_like_the_map() -> None:
    from tokenizers import normalizers

    mapping = {0x09: " ", 0x07: "", 0xFF21: "A", 0x2460: "1", 0xFB01: "fi", 0x1D400: "A", 0x00A0: " "}
    normalizer = normalizers.Precompiled(build_precompiled_charsmap(mapping))
    for cp, out in mapping.items():
        assert normalizer.normalize_str(chr(cp)) == out, hex(cp)
    assert normalizer.normalize_str("Ａ\tbell\x07 ﬁne ①") == "A bell fine 1"
    # Characters outside the map pass through, including multi-byte ones sharing a lead byte.
    assert normalizer.normalize_str("zażółć ＢＢ 𝐁") == "zażółć ＢＢ 𝐁"


def tiny_model_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, f = 32, 64

    def mat(rows: int, cols: int) -> np.ndarray:
        # Multiples of 1/8 with 7/8 in every block: exactly representable in Q4_0 (scale 1/8).
        values = rng.integers(-7, 8, size=(rows, cols)).astype(np.float32) / 8
        values.reshape(-1, 32)[:, 0] = 7 / 8
        return values

    tensors = {
        "emb.word": mat(7, h),
        "emb.pos": rng.normal(size=(16, h)).astype(np.float32),
        "emb.type": rng.normal(size=(2, h)).astype(np.float32),
        "emb.ln.w": np.ones(h, np.float32),
        "emb.ln.b": np.zeros(h, np.float32),
    }
    for short, rows, cols in (
        ("q", h, h),
        ("k", h, h),
        ("v", h, h),
        ("ao", h, h),
        ("fi", f, h),
        ("fo", h, f),
    ):
        tensors[f"l0.{short}.w"] = mat(rows, cols)
        tensors[f"l0.{short}.b"] = rng.normal(size=rows).astype(np.float32)
    for short in ("aln", "oln"):
        tensors[f"l0.{short}.w"] = np.ones(h, np.float32)
        tensors[f"l0.{short}.b"] = np.zeros(h, np.float32)
    return tensors


def test_converted_model_places_every_tensor(tmp_path: Path) -> None:
    from vitrine.text.e5_convert import build_model, build_tokenizer

    tensors = tiny_model_tensors(np.random.default_rng(2))
    path = tmp_path / "tiny.bin"
    write_e5s1(path, tensors, q4={n for n in tensors if n.endswith(".w") and "ln" not in n} | {"emb.word"})
    q4 = read_q4_model(path)
    model = build_model(q4)
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_array_equal(params["embeddings.word_embeddings.weight"], tensors["emb.word"])
    # XLM-R position ids start after the padding index: file row 0 is model row 2.
    np.testing.assert_array_equal(params["embeddings.position_embeddings.weight"][2:], tensors["emb.pos"])
    np.testing.assert_array_equal(params["encoder.layer.0.attention.self.key.weight"], tensors["l0.k.w"])
    np.testing.assert_array_equal(params["encoder.layer.0.intermediate.dense.weight"], tensors["l0.fi.w"])
    np.testing.assert_array_equal(params["encoder.layer.0.output.dense.bias"], tensors["l0.fo.b"])
    assert model.config.max_position_embeddings == 18 and model.config.pad_token_id == 1

    tokenizer = build_tokenizer(q4)
    assert tokenizer("a")["input_ids"] == [0, 4, 2]
    # The file's normalisation map applies: TAB becomes a space, BEL is dropped.
    assert tokenizer("\ta\x07")["input_ids"] == [0, 4, 2]
