"""zlib's CRC-32 of many byte strings at once, as array work (numpy), for the hashed feature vocabularies.

`crc32_spans(buffer, starts, lengths, seeds)` equals, for every span i,
`zlib.crc32(buffer[starts[i]:starts[i] + lengths[i]], seeds[i])`: the CRC-32 of a key continued from
the CRC-32 of its prefix (`zlib.crc32(b"c:")` for "c:" + n-gram), so keys never have to exist as
Python strings. The loop runs over byte positions, not keys: step j updates every span longer than j
with the table-driven CRC step (the spans are sorted longest first, so those are a prefix of the
array). Spans longer than `LONG_SPAN` bytes (a rare very long word) are finished with zlib itself,
which bounds the number of steps per batch.
"""

from __future__ import annotations

import zlib

import numpy as np

LONG_SPAN = 48


def _crc_table() -> np.ndarray:
    """The 256-entry table of the reflected CRC-32 polynomial 0xEDB88320 (zlib, PNG, Ethernet)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()  # a constant: a function of the polynomial only


def crc32_spans(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """uint32 [k]: `zlib.crc32(bytes(buffer[s:s + n]), seed)` for each (s, n, seed); `buffer` uint8."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    seeds = np.broadcast_to(np.asarray(seeds, dtype=np.uint32), starts.shape)
    k = starts.shape[0]
    out = np.empty(k, dtype=np.uint32)
    if k == 0:
        return out
    # longest first, so the spans still active at any step are a prefix (a radix sort of small keys)
    order = np.argsort((LONG_SPAN + 1 - np.minimum(lengths, LONG_SPAN + 1)).astype(np.uint8), kind="stable")
    s, n = starts[order], lengths[order]
    register = ~seeds[order]  # zlib keeps the register inverted between calls
    long_count = int(np.searchsorted(-n, -LONG_SPAN, side="left"))  # spans longer than LONG_SPAN
    steps = int(min(n[long_count] if long_count < k else 0, LONG_SPAN))
    # how many spans are longer than j, for every step j
    active = np.searchsorted(-n[long_count:], -np.arange(steps), side="left") + long_count
    table = _TABLE
    for j in range(steps):
        a = int(active[j])
        head = register[long_count:a]
        head ^= buffer[s[long_count:a] + j]
        register[long_count:a] = table[head & 0xFF] ^ (head >> 8)
    crc = ~register
    if long_count:
        raw = memoryview(buffer.tobytes())
        for i in range(long_count):
            start, length = int(s[i]), int(n[i])
            crc[i] = zlib.crc32(raw[start : start + length], int(seeds[order[i]]))
    out[order] = crc
    return out
