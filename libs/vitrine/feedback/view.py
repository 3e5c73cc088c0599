"""The experiments' results as Prometheus gauges: a thread tailing the results topic.

Every feedback instance reads every partition's arm records, so each one exports the same
experiment-level series (dashboards take `max` over instances); the processing metrics are per
instance.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from vitrine.feedback.results import ExperimentResults, ReportConfig, experiment_report
from vitrine.obs.metrics import FeedbackMetrics

log = logging.getLogger(__name__)


class ResultsView:
    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        metrics: FeedbackMetrics,
        config: ReportConfig | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.metrics = metrics
        self.config = config or ReportConfig()
        self.refresh_s = refresh_s
        self.results = ExperimentResults(keep_history=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ResultsView:
        self._thread = threading.Thread(target=self._run, name="results-view", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assigned = False
        next_refresh = 0.0
        while not self._stop.is_set():
            try:
                if not assigned:
                    ids = sorted(self.consumer.partitions_for_topic(self.topic) or ())
                    if not ids:
                        self._stop.wait(1.0)
                        continue
                    partitions = [TopicPartition(self.topic, p) for p in ids]
                    self.consumer.assign(partitions)
                    self.consumer.seek_to_beginning(*partitions)
                    assigned = True
                for records in self.consumer.poll(timeout_ms=500).values():
                    for r in records:
                        if r.value is not None:
                            self.results.add(r.value)
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_s
                    self.export()
            except Exception:  # a bad record or a broker blip must not end the view
                log.exception("results view")
                self._stop.wait(1.0)
        self.consumer.close()

    def export(self) -> None:
        m = self.metrics
        report = experiment_report(self.results, self.config)
        for entry in report["experiments"]:
            exp, placement = entry["experiment"], entry["placement"]
            for v in entry["variants"]:
                labels = (exp, v["variant"], placement)
                m.arm_units.labels(*labels).set(v["units"])
                m.arm_impressions.labels(*labels).set(v["impressions"])
                m.arm_clicks.labels(*labels).set(v["clicks"])
                m.arm_conversions.labels(*labels).set(v["conversions"])
                m.arm_revenue.labels(*labels).set(v["revenue"])
                for metric in ("ctr", "conversion", "revenue_per_impression"):
                    for bound in ("estimate", "lower", "upper"):
                        value = v[metric][bound]
                        m.arm_rate.labels(*labels, metric, bound).set(math.nan if value is None else value)
            for c in entry["comparisons"]:
                labels = (exp, c["variant"], placement)
                for bound, key in (("estimate", "lift"), ("lower", "lower"), ("upper", "upper")):
                    value = c[key]
                    m.lift.labels(*labels, c["metric"], bound).set(math.nan if value is None else value)
                m.p_value.labels(*labels, c["metric"]).set(c["p_value"])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
