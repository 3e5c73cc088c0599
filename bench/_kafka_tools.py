"""Kafka's own performance tools (the Java clients), run against a benchmark's broker as the peer figure.

The tools jar (kafka-tools, the broker's version) is resolved by `make kafka-tools` into
~/.cache/vitrine/kafka/tools (or $VITRINE_KAFKA_TOOLS); everything else it needs is on the broker's
classpath.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vitrine.stream.broker import kafka_classpath

DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "vitrine" / "kafka" / "tools"
_SUMMARY = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency"
)


@dataclass(frozen=True)
class ProducerPerformance:
    records: int
    records_per_s: float
    mb_per_s: float
    avg_latency_ms: float


def tools_classpath() -> str:
    tools = Path(os.environ.get("VITRINE_KAFKA_TOOLS") or DEFAULT_TOOLS_DIR)
    if not any(tools.glob("kafka-tools-*.jar")):
        raise SystemExit(
            f"no kafka-tools jar in {tools}: run `make kafka-tools` (resolves it from Maven Central)"
        )
    return f"{tools}/*:{kafka_classpath()}"


def producer_performance(
    bootstrap_servers: str, topic: str, records: int, record_size: int = 300, acks: str = "all"
) -> ProducerPerformance:
    """`kafka-producer-perf-test`: `records` records of `record_size` bytes, as fast as it can."""
    command = [
        "java",
        "-Xmx256m",
        "-cp",
        tools_classpath(),
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap_servers}",
        f"acks={acks}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    summaries = _SUMMARY.findall(result.stdout)
    if result.returncode != 0 or not summaries:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    sent, rate, mb, latency = summaries[-1]
    return ProducerPerformance(int(sent), float(rate), float(mb), float(latency))
