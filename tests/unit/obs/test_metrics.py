"""Request metrics: what `observe_request` records is what the labelled metrics would have recorded."""

from __future__ import annotations

from vitrine.obs.metrics import RecommenderMetrics


def _sample(metrics: RecommenderMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_observe_request_counts_and_times_each_method_code_and_variant_apart() -> None:
    metrics = RecommenderMetrics()
    for _ in range(3):
        metrics.observe_request("Similar", "OK", "control", 0.002)
    metrics.observe_request("Similar", "NOT_FOUND", "control", 0.001)
    metrics.observe_request("Similar", "OK", "treatment", 0.3)

    counted = "vitrine_recommender_requests_total"
    assert _sample(metrics, counted, {"method": "Similar", "code": "OK", "variant": "control"}) == 3
    assert _sample(metrics, counted, {"method": "Similar", "code": "NOT_FOUND", "variant": "control"}) == 1
    assert _sample(metrics, counted, {"method": "Similar", "code": "OK", "variant": "treatment"}) == 1
    timed = {"method": "Similar", "variant": "control"}
    assert _sample(metrics, "vitrine_recommender_request_seconds_count", timed) == 4
    assert abs(_sample(metrics, "vitrine_recommender_request_seconds_sum", timed) - 0.007) < 1e-9
    # the 0.3 s request landed in its own variant's histogram, above the 0.25 s bucket
    slow = {"method": "Similar", "variant": "treatment", "le": "0.25"}
    assert _sample(metrics, "vitrine_recommender_request_seconds_bucket", slow) == 0


def test_observe_request_binds_the_label_children_once_per_label_set() -> None:
    metrics = RecommenderMetrics()
    metrics.observe_request("Inspire", "OK", "default", 0.01)
    bound = dict(metrics._request_children)
    metrics.observe_request("Inspire", "OK", "default", 0.01)
    assert metrics._request_children == bound  # reused, not bound again
    # and they are the very children `labels()` hands out, so both ways of counting add up
    metrics.requests.labels("Inspire", "OK", "default").inc()
    labels = {"method": "Inspire", "code": "OK", "variant": "default"}
    assert _sample(metrics, "vitrine_recommender_requests_total", labels) == 3
