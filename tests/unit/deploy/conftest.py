"""Shared facts for the deployment-file tests: the repository, the real metric names and labels, and a
small reader for PromQL expressions (metric names, label matchers, `by (...)` groupings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from vitrine.obs.metrics import EncoderMetrics, FeedbackMetrics, ImpressionMetrics, RecommenderMetrics

REPO = Path(__file__).resolve().parents[3]
# Labels Prometheus adds to every scraped series, and the ones the k8s scrape config adds.
TARGET_LABELS = frozenset({"job", "instance", "deployment", "pod"})


@dataclass(frozen=True)
class MetricCatalog:
    """Every series name the services expose, with the labels it carries."""

    series: dict[str, frozenset[str]]

    def check_expr(self, expr: str) -> list[str]:
        """Problems with a PromQL expression: unknown vitrine series, or labels those series lack."""
        problems: list[str] = []
        names = set(re.findall(r"\b(vitrine_[a-z0-9_]+)\b", expr))
        if not names:
            problems.append("uses no vitrine metric")
        unknown = sorted(n for n in names if n not in self.series)
        problems += [f"unknown series {n}" for n in unknown]
        allowed = TARGET_LABELS.union(*(self.series.get(n, frozenset()) for n in names))
        for name, matchers in re.findall(r"\b(vitrine_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if name in self.series and label not in self.series[name] | TARGET_LABELS:
                    problems.append(f"{name} has no label {label!r}")
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in (x.strip() for x in grouping.split(",") if x.strip()):
                if label not in allowed:
                    problems.append(f"groups by {label!r}, which none of {sorted(names)} has")
        return problems


def _series(metric: MetricWrapperBase) -> dict[str, frozenset[str]]:
    # prometheus_client keeps the family name without `_total`; the exposed sample names follow the type
    name, kind = metric._name, metric._type  # type: ignore[attr-defined]
    labels = frozenset(metric._labelnames)  # type: ignore[attr-defined]
    if kind == "counter":
        return {f"{name}_total": labels, f"{name}_created": labels}
    if kind == "histogram":
        return {
            f"{name}_bucket": labels | {"le"},
            f"{name}_count": labels,
            f"{name}_sum": labels,
            f"{name}_created": labels,
        }
    if kind == "gauge":
        return {name: labels}
    raise AssertionError(f"metric type {kind} of {name} is not handled here yet")


@pytest.fixture(scope="session")
def metric_catalog() -> MetricCatalog:
    series: dict[str, frozenset[str]] = {}
    for metrics in (EncoderMetrics(), RecommenderMetrics(), FeedbackMetrics(), ImpressionMetrics()):
        for value in vars(metrics).values():
            if isinstance(value, MetricWrapperBase):
                series.update(_series(value))
    assert "vitrine_recommender_requests_total" in series  # the reader above understood the registry
    return MetricCatalog(series)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
