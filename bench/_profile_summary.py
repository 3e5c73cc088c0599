"""Sums a py-spy profile ("raw" folded stacks) of the recommender server by part of the request path.

    python bench/_profile_summary.py PROFILE.txt [--top 25]

Each sample is charged to one part: the innermost frame that belongs to a listed part wins (so the
engine's time inside `query_batch` is the index's, not the adapter's that called it); samples with
no listed frame are the gRPC transport (the server's threads, the completion queue, the pool).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

# (part, pattern on a frame "function (file:line)"), innermost match wins; order only breaks ties
PARTS: list[tuple[str, re.Pattern[str]]] = [
    (
        "index engine (Qdrant Edge calls)",
        re.compile(r"^(query_batch|retrieve) \(|_engine_(query|retrieve) \(vitrine/index/edge"),
    ),
    ("index adapter (filters, hits -> ScoredItem)", re.compile(r"vitrine/index/")),
    ("metrics (prometheus_client)", re.compile(r"prometheus_client/|vitrine/obs/")),
    ("request decoding (wire)", re.compile(r"vitrine/api/wire\.py")),
    ("request parsing and validation", re.compile(r"vitrine/api/requests\.py")),
    ("model lease and deadline", re.compile(r"vitrine/serving/(registry|deadline)\.py|contextlib\.py")),
    ("experiment routing", re.compile(r"vitrine/serving/experiments\.py")),
    ("task (anchor, selection, reasons)", re.compile(r"vitrine/serving/")),
    ("servicer and response building", re.compile(r"vitrine/api/servicer\.py")),
]
TRANSPORT = "gRPC transport (server threads, pool, (de)serialisation)"


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return TRANSPORT


def summarise(path: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    parts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        parts[part_of(frames)] += n
        leaves[re.sub(r":\d+\)", ")", frames[-1])] += n
    return total, parts, leaves


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, parts, leaves = summarise(args.profile)
    print(f"{total} samples")
    print("| part of the request path | share of samples |\n|---|---:|")
    for name, n in parts.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    print(f"\ninnermost functions (top {args.top}):")
    for name, n in leaves.most_common(args.top):
        print(f"{100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
