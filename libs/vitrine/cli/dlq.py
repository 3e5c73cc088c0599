"""`vitrine dlq read|replay`: the dead letters with their reasons (a table or JSON lines), and replaying
selected ones to where they came from once the cause is fixed (docs/OPERATIONS.md, "Dead letters")."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_TOPIC = "catalog.products.dlq"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq",
        help="read or replay the dead-letter topic",
        description="Read dead letters (why each event was rejected, which encoder wrote it) or send "
        "selected ones back to their source topic. Kafka: --bootstrap-servers, or --config FILE with a "
        "`dlq:` section, or VITRINE_DLQ_* variables (SASL/TLS as for the services: VITRINE_DLQ_KAFKA_*).",
    )
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    read = actions.add_parser("read", help="list dead letters (table, or --json: one object per line)")
    _common(read)
    read.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    read.set_defaults(handler=_read)
    again = actions.add_parser(
        "replay", help="send selected dead letters back to their source topic, unchanged"
    )
    _common(again)
    again.add_argument("--to", default=None, metavar="TOPIC", help="replay into TOPIC instead of the source")
    again.add_argument("--dry-run", action="store_true", help="list what would be replayed, send nothing")
    again.add_argument(
        "--all", action="store_true", help="replay every dead letter (required when nothing is selected)"
    )
    again.set_defaults(handler=_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="YAML file with a `dlq:` section")
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", default=None)
    parser.add_argument("--topic", default=None, help=f"the dead-letter topic (default: {DEFAULT_TOPIC})")
    parser.add_argument("--reason", action="append", default=[], help="only this reason (repeatable)")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        help="only dead letters this consumer group wrote (repeatable)",
    )
    parser.add_argument("--key", action="append", default=[], help="only this record key / product id")
    parser.add_argument(
        "--offset",
        action="append",
        default=[],
        metavar="PARTITION:OFFSET",
        help="only this dead letter (as `read` lists it; repeatable)",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many")


def _session(args: argparse.Namespace) -> tuple[Any, str, Any]:
    from vitrine.config import load_settings
    from vitrine.stream.dlq import Selection
    from vitrine.stream.dlq_settings import DeadLetterToolSettings
    from vitrine.stream.kafka import KafkaSettings

    settings = load_settings(
        DeadLetterToolSettings,
        args.config,
        "dlq",
        kafka_bootstrap_servers=args.kafka_bootstrap_servers,
        topic=args.topic,
    )
    kafka = KafkaSettings(
        settings.kafka_bootstrap_servers, client_id="vitrine-dlq", security=settings.kafka_security()
    )
    selection = Selection(
        frozenset(args.reason), frozenset(args.group), frozenset(args.key), frozenset(args.offset)
    )
    return kafka, settings.topic, selection


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _table(letters: list[Any]) -> str:
    header = ["AT", "TIME (UTC)", "REASON", "GROUP", "KEY", "SOURCE", "DETAIL"]
    rows = []
    for letter in letters:
        data = letter.to_json()
        key = data["key"] if len(data["key"]) <= 24 else data["key"][:23] + "…"
        detail = data["detail"] if len(data["detail"]) <= 80 else data["detail"][:79] + "…"
        time_ = data["time"].replace("T", " ").removesuffix("+00:00")
        rows.append([letter.position, time_, letter.reason, letter.group or "-", key, letter.source, detail])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(_row(r, widths) for r in [header, *rows])


def _summary(letters: list[Any]) -> str:
    reasons = Counter(letter.reason for letter in letters)
    parts = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    return f"{len(letters)} dead letter(s)" + (f": {parts}" if parts else "")


def _read(args: argparse.Namespace) -> int:
    from vitrine.stream.dlq import read_dead_letters

    kafka, topic, selection = _session(args)
    letters = list(read_dead_letters(kafka, topic, selection, args.limit))
    if args.json:
        for letter in letters:
            print(json.dumps(letter.to_json(), ensure_ascii=False))
        return 0
    if letters:
        print(_table(letters))
    print(_summary(letters) + f" in {topic}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from vitrine.errors import ConfigError
    from vitrine.stream.dlq import read_dead_letters, replay

    kafka, topic, selection = _session(args)
    if selection.is_everything and not args.all:
        raise ConfigError("select what to replay (--reason, --group, --key, --offset) or pass --all")
    letters = list(read_dead_letters(kafka, topic, selection, args.limit))
    if args.dry_run or not letters:
        if letters:
            print(_table(letters))
        print(f"would replay {_summary(letters)}" if args.dry_run else "nothing selected to replay")
        return 0
    report = replay(kafka, letters, args.to)
    targets = ", ".join(f"{t} {n}" for t, n in sorted(report.by_topic.items()))
    print(f"replayed {report.sent} dead letter(s) to {targets} ({_summary(letters)})")
    return 0
