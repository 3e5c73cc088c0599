"""Request validation: every limit of the API is enforced with a message naming the field."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vitrine.api.requests import RequestParser
from vitrine.errors import InvalidRequestError
from vitrine.serving.inspire import Strategy
from vitrine.v1 import catalog_pb2
from vitrine.v1 import recommender_pb2 as pb

parser = RequestParser()


def test_filters_become_an_index_filter_and_caps() -> None:
    f = pb.Filters(
        include_out_of_stock=True,
        price_min=5,
        price_max=50,
        categories_include=["Audio"],
        categories_exclude=["Cables"],
        sellers_include=["s1"],
        sellers_exclude=["s2"],
        exclude_product_ids=["p1", "p2"],
        max_per_seller=2,
        max_per_category=3,
    )
    query = parser.similar(pb.SimilarRequest(product_id="p0", filters=f))
    index, caps = query.filters.index, query.filters.caps
    assert not index.in_stock_only and (index.price_min, index.price_max) == (5, 50)
    assert index.categories_include == ("Audio",) and index.categories_exclude == ("Cables",)
    assert index.sellers_include == ("s1",) and index.sellers_exclude == ("s2",)
    assert index.exclude_ids == ("p1", "p2") and (caps.max_per_seller, caps.max_per_category) == (2, 3)
    # an unset price end is open; a zero price is a real bound
    open_top = parser.similar(pb.SimilarRequest(product_id="p0", filters=pb.Filters(price_min=0)))
    assert (open_top.filters.index.price_min, open_top.filters.index.price_max) == (0, None)
    assert parser.similar(pb.SimilarRequest(product_id="p0")).filters.index.in_stock_only


def test_an_inline_product_is_validated_like_a_catalogue_event() -> None:
    product = catalog_pb2.Product(title="Voltra pro laptop", category_path=["Electronics", "Laptops"])
    query = parser.similar(pb.SimilarRequest(product=product, limit=3))
    assert query.anchor.product is not None and query.anchor.product.title == "Voltra pro laptop"
    assert query.anchor.product_id == "" and query.limit == 3
    with pytest.raises(InvalidRequestError, match="product: title is empty"):
        parser.similar(pb.SimilarRequest(product=catalog_pb2.Product(title=" ")))


@pytest.mark.parametrize("availability", [5, -1, 2**31 - 1])
def test_an_unknown_availability_of_an_inline_product_is_invalid(availability: int) -> None:
    """proto3 enums are open: any int32 arrives. It used to escape as a ValueError (INTERNAL); found by
    tests/reliability/test_fuzz_grpc.py."""
    product = catalog_pb2.Product(title="Voltra pro laptop", availability=availability)  # type: ignore[arg-type]
    for parse in (parser.similar, parser.complementary):
        request = (pb.SimilarRequest if parse == parser.similar else pb.ComplementaryRequest)(product=product)
        with pytest.raises(InvalidRequestError, match=rf"product.availability {availability} is unknown"):
            parse(request)  # type: ignore[arg-type]


def test_history_is_ordered_most_recent_first_without_repeats() -> None:
    def at(seconds: int) -> Timestamp:
        return Timestamp(seconds=seconds)

    views = [
        pb.ViewedProduct(product_id="a", viewed_at=at(100)),
        pb.ViewedProduct(product_id="b", viewed_at=at(300)),
        pb.ViewedProduct(product_id="c", viewed_at=at(200)),
        pb.ViewedProduct(product_id="a", viewed_at=at(400)),
    ]
    assert parser.inspire(pb.InspireRequest(history=views)).history == ("a", "b", "c")
    untimed = [pb.ViewedProduct(product_id=p) for p in ("x", "y", "z")]  # later in the list = more recent
    assert parser.inspire(pb.InspireRequest(history=untimed)).history == ("z", "y", "x")


def test_inspire_defaults_and_knobs() -> None:
    q = parser.inspire(pb.InspireRequest(history=[pb.ViewedProduct(product_id="a")]))
    assert q.strategy is Strategy.CLUSTERS
    assert (q.nearest_clusters, q.skip_clusters, q.max_anchors, q.mmr_diversity) == (3, 0, 5, 0.5)
    d = pb.Diversity(strategy=pb.Diversity.STRATEGY_MMR, mmr_diversity=0.8, max_anchors=2)
    q = parser.inspire(pb.InspireRequest(history=[pb.ViewedProduct(product_id="a")], diversity=d))
    assert q.strategy is Strategy.MMR and q.mmr_diversity == pytest.approx(0.8) and q.max_anchors == 2


def test_an_intent_without_a_strategy_gets_its_nearest_items() -> None:
    q = parser.inspire(pb.InspireRequest(intent="  trail running  "))
    assert q.intent == "trail running"
    assert q.strategy is Strategy.MMR and q.mmr_diversity == 0.0
    # an explicit strategy is read as for a history
    clusters = pb.Diversity(strategy=pb.Diversity.STRATEGY_CLUSTERS)
    assert parser.inspire(pb.InspireRequest(intent="x", diversity=clusters)).strategy is Strategy.CLUSTERS
    mmr = parser.inspire(
        pb.InspireRequest(intent="x", diversity=pb.Diversity(strategy=pb.Diversity.STRATEGY_MMR))
    )
    assert mmr.mmr_diversity == 0.5
    some = pb.Diversity(mmr_diversity=0.3)  # no strategy, a diversity: MMR at that diversity
    q = parser.inspire(pb.InspireRequest(intent="x", diversity=some))
    assert q.strategy is Strategy.MMR and q.mmr_diversity == pytest.approx(0.3)
    knob = pb.Diversity(nearest_clusters=2)  # a cluster knob without a strategy: clusters, as it asks
    assert parser.inspire(pb.InspireRequest(intent="x", diversity=knob)).strategy is Strategy.CLUSTERS


def test_the_intent_evaluation_serves_the_api_default() -> None:
    from vitrine.eval.intent import IntentKnobs

    q = parser.inspire(pb.InspireRequest(intent="trail running", limit=50))
    assert IntentKnobs().query("trail running") == q


def test_complementary_targets_are_kept_in_order_once() -> None:
    q = parser.complementary(pb.ComplementaryRequest(product_id="p", target_categories=["B", "A", "B"]))
    assert q.target_categories == ("B", "A")


def _views(n: int) -> list[pb.ViewedProduct]:
    return [pb.ViewedProduct(product_id=f"p{i}") for i in range(n)]


@pytest.mark.parametrize(
    ("parse", "message"),
    [
        (lambda: parser.similar(pb.SimilarRequest()), "product_id .*is required"),
        (
            lambda: parser.similar(pb.SimilarRequest(product_id="p", limit=501)),
            "limit must be between 1 and 500",
        ),
        (lambda: parser.similar(pb.SimilarRequest(product_id="p", limit=-3)), "limit"),
        (lambda: parser.similar(pb.SimilarRequest(product_id="x" * 257)), "longer than 256"),
        (
            lambda: parser.similar(
                pb.SimilarRequest(product_id="p", filters=pb.Filters(price_min=9, price_max=3))
            ),
            "price_min .* is above",
        ),
        (
            lambda: parser.similar(
                pb.SimilarRequest(product_id="p", filters=pb.Filters(price_max=float("nan")))
            ),
            "price_max must be a finite number",
        ),
        (
            lambda: parser.similar(pb.SimilarRequest(product_id="p", filters=pb.Filters(price_min=-1))),
            "price_min",
        ),
        (
            lambda: parser.similar(
                pb.SimilarRequest(
                    product_id="p", filters=pb.Filters(sellers_exclude=[f"s{i}" for i in range(101)])
                )
            ),
            "sellers_exclude has 101 values; at most 100",
        ),
        (
            lambda: parser.similar(
                pb.SimilarRequest(product_id="p", filters=pb.Filters(categories_include=[""]))
            ),
            "categories_include values must be 1..256",
        ),
        (
            lambda: parser.similar(
                pb.SimilarRequest(
                    product_id="p", filters=pb.Filters(exclude_product_ids=[f"p{i}" for i in range(1001)])
                )
            ),
            "at most 1000",
        ),
        (
            lambda: parser.similar(pb.SimilarRequest(product_id="p", filters=pb.Filters(max_per_seller=501))),
            "max_per_seller must be between 0 and 500",
        ),
        (
            lambda: parser.complementary(
                pb.ComplementaryRequest(product_id="p", target_categories=[f"c{i}" for i in range(21)])
            ),
            "target_categories has 21 values; at most 20",
        ),
        (lambda: parser.inspire(pb.InspireRequest()), "history or intent is required"),
        (
            lambda: parser.inspire(pb.InspireRequest(intent="x", history=_views(1))),
            "either history or intent, not both",
        ),
        (
            lambda: parser.inspire(pb.InspireRequest(history=_views(101))),
            "history has 101 items; at most 100",
        ),
        (lambda: parser.inspire(pb.InspireRequest(intent="x" * 1001)), "longer than 1000 characters"),
        (
            lambda: parser.inspire(
                pb.InspireRequest(intent="x", diversity=pb.Diversity(nearest_clusters=17))
            ),
            "nearest_clusters must be between 1 and 16",
        ),
        (
            lambda: parser.inspire(
                pb.InspireRequest(intent="x", diversity=pb.Diversity(nearest_clusters=16, max_anchors=5))
            ),
            "5 x 16: at most 64 cluster searches per request",
        ),
        (
            lambda: parser.inspire(pb.InspireRequest(intent="x", diversity=pb.Diversity(skip_clusters=-1))),
            "skip_clusters must be between 0 and 16",
        ),
        (
            lambda: parser.inspire(pb.InspireRequest(intent="x", diversity=pb.Diversity(mmr_diversity=1.5))),
            r"mmr_diversity must be in \[0, 1\]",
        ),
        (
            lambda: parser.inspire(pb.InspireRequest(intent="x", diversity=pb.Diversity(strategy=7))),  # type: ignore[arg-type]
            "unknown",
        ),
        (lambda: parser.routing("u" * 257, ""), "unit_key is longer than 256"),
        (lambda: parser.batch_size(0), "1..32"),
        (lambda: parser.batch_size(33), "1..32"),
    ],
)
def test_bad_requests_are_rejected_with_the_field_and_the_limit(parse, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse()
