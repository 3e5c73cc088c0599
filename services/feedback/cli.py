"""`vitrine feedback`: run the feedback service (attribution and experiment results).

The service's own command: `register` adds it to the `vitrine` CLI, which finds it through the
`vitrine.commands` entry point (pyproject.toml) without the library importing the service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "feedback", help="run the feedback service (clicks and purchases joined to impressions, A/B results)"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file with a `feedback:` section")
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", default=None)
    parser.add_argument("--group-id", default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--interactions-topic", default=None)
    parser.add_argument("--results-topic", default=None)
    parser.add_argument("--changelog-topic", default=None)
    parser.add_argument("--dead-letter-topic", default=None)
    parser.add_argument("--attribution-window-s", type=float, default=None)
    parser.add_argument("--results-interval-s", type=float, default=None)
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--instance-id", default=None)
    parser.add_argument("--transactional-id", default=None)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitrine.config import load_settings
    from vitrine_services.feedback.service import run_feedback
    from vitrine_services.feedback.settings import FeedbackSettings

    settings = load_settings(
        FeedbackSettings,
        args.config,
        "feedback",
        kafka_bootstrap_servers=args.kafka_bootstrap_servers,
        group_id=args.group_id,
        metrics_port=args.metrics_port,
        interactions_topic=args.interactions_topic,
        results_topic=args.results_topic,
        changelog_topic=args.changelog_topic,
        dead_letter_topic=args.dead_letter_topic,
        attribution_window_s=args.attribution_window_s,
        results_interval_s=args.results_interval_s,
        max_batch=args.max_batch,
        instance_id=args.instance_id,
        transactional_id=args.transactional_id,
    )
    return run_feedback(settings)
