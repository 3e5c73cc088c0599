"""The batch partitioner puts every key where kafka-python's default partitioner (Kafka's murmur2)
would: the vector sink passes partitions itself, and a product's vectors must stay in one partition
of the compacted vectors topic whichever way they were sent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from vitrine.stream.partitioning import key_partitions, murmur2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=50))
def test_murmur2_equals_kafka_pythons(keys: list[bytes]) -> None:
    assert murmur2(keys).tolist() == [kafka_murmur2(k) for k in keys]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(max_size=30).map(str.encode), min_size=1, max_size=50),
    st.sets(st.integers(0, 40), min_size=1, max_size=12),
)
def test_partitions_are_the_default_partitioners(keys: list[bytes], partitions: set[int]) -> None:
    ordered = sorted(partitions)
    expected = [ordered[(kafka_murmur2(k) & 0x7FFFFFFF) % len(ordered)] for k in keys]
    assert key_partitions(keys, partitions).tolist() == expected


def test_the_java_clients_values() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed ints there)
    keys = [b"21", b"foobar", b"a-little-bit-long-string", b"a-little-bit-longer-string"]
    keys.append(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")
    signed = [h - (1 << 32) if h >= 1 << 31 else h for h in murmur2(keys).tolist()]
    assert signed == [-973932308, -790332482, -985981536, -1486304829, -58897971]
    # and the Java DefaultPartitioner's choices among 1,000 partitions (kafka-python's own check)
    keys = [b"", b"a", b"ab", b"abc", b"123456789", b"\x00 "]
    assert key_partitions(keys, range(1000)).tolist() == [681, 524, 434, 107, 566, 742]
