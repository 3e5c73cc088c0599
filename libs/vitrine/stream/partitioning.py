"""Kafka's default key partitioning, for a whole batch of keys at once (numpy).

`key_partitions(keys, partitions)` is what kafka-python's `DefaultPartitioner` (and the Java client's
`BuiltInPartitioner` for keyed records) picks for each key: murmur2(key) & 0x7fffffff modulo the
number of partitions, into the sorted partition ids. The encoder's vector sink passes the partition
to `send()` itself: kafka-python would otherwise compute the hash in pure Python and re-read the
topic's metadata for every record (issue 18), and the records land exactly where they did before,
so a product's vectors stay in one partition of the compacted topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes]) -> np.ndarray:
    """uint32 [n]: Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of each key."""
    n = len(keys)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    buffer = np.frombuffer(b"".join(keys) + b"\0\0\0", dtype=np.uint8)  # padding for the last tail
    starts = np.cumsum(lengths) - lengths
    h = (np.uint32(_SEED) ^ lengths.astype(np.uint32)).astype(np.uint32)
    blocks = lengths // 4
    order = np.argsort(-blocks, kind="stable")  # keys with more blocks first: active ones are a prefix
    sorted_blocks = blocks[order]
    hs, ss = h[order], starts[order]
    for j in range(int(sorted_blocks[0]) if n else 0):
        a = int(np.searchsorted(-sorted_blocks, -j, side="left"))  # keys with more than j blocks
        at = ss[:a] + 4 * j
        k = (
            buffer[at].astype(np.uint32)
            | buffer[at + 1].astype(np.uint32) << 8
            | buffer[at + 2].astype(np.uint32) << 16
            | buffer[at + 3].astype(np.uint32) << 24
        )
        k *= _M
        k ^= k >> 24
        k *= _M
        hs[:a] *= _M
        hs[:a] ^= k
    h[order] = hs
    tail_at = starts + 4 * blocks
    extra = lengths % 4
    for size, shift in ((3, 16), (2, 8), (1, 0)):
        has = extra >= size
        h[has] ^= buffer[tail_at[has] + size - 1].astype(np.uint32) << shift
    h[extra >= 1] *= _M
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def key_partitions(keys: Sequence[bytes], partitions: Iterable[int]) -> np.ndarray:
    """int64 [n]: the partition Kafka's default partitioner gives each key among `partitions`."""
    ids = np.array(sorted(partitions), dtype=np.int64)
    if ids.size == 0:
        raise ValueError("a topic has at least one partition")
    return ids[(murmur2(keys) & np.uint32(0x7FFFFFFF)).astype(np.int64) % ids.size]
