"""`vitrine kafka start|stop|status|topics`: a local single-node Apache Kafka broker for dev and demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("artifacts/kafka")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("kafka", help="run a local Kafka broker (KRaft)")
    actions = parser.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)

    start = actions.add_parser(
        "start", help="format storage (first time) and start the broker in the background"
    )
    start.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default: %(default)s")
    start.add_argument("--port", type=int, default=9092, help="client port (default: %(default)s)")
    start.add_argument("--controller-port", type=int, default=9093, help="KRaft controller port")
    start.add_argument("--heap", default="384m", help="JVM max heap (default: %(default)s)")
    start.add_argument("--partitions", type=int, default=2, help="partitions of the catalogue topics")
    start.set_defaults(handler=_start)

    stop = actions.add_parser("stop", help="stop the broker started from --data-dir")
    stop.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    stop.set_defaults(handler=_stop)

    status = actions.add_parser("status", help="is a broker running from --data-dir?")
    status.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    status.set_defaults(handler=_status)


def _start(args: argparse.Namespace) -> int:
    from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, read_pid
    from vitrine.stream.kafka import KafkaSettings, TopicNames
    from vitrine.stream.topics import ensure_catalog_topics

    config = BrokerConfig(args.data_dir.resolve(), args.port, args.controller_port, heap=args.heap)
    broker = LocalKafkaBroker(config)
    if read_pid(broker.pid_file) is not None and _alive(read_pid(broker.pid_file)):
        print(f"a broker from {args.data_dir} is already running")
        return 0
    broker.start()
    created = ensure_catalog_topics(KafkaSettings(broker.bootstrap_servers), TopicNames(), args.partitions)
    print(
        f"Kafka broker on {broker.bootstrap_servers} (logs: {broker.log_file}); "
        f"created topics: {created or 'none'}"
    )
    return 0


def _stop(args: argparse.Namespace) -> int:
    from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker

    broker = LocalKafkaBroker(BrokerConfig(args.data_dir.resolve()))
    broker.stop()
    print("Kafka broker stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    pid_file = args.data_dir / "broker.pid"
    if not pid_file.exists():
        print("not running")
        return 1
    info = json.loads(pid_file.read_text())
    running = _alive(int(info["pid"]))
    print(f"{'running' if running else 'not running (stale pid file)'}: {info}")
    return 0 if running else 1


def _alive(pid: int | None) -> bool:
    import os

    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
