"""Property-based fuzzing of every Recommender RPC over real loopback gRPC, with real trained models and
real Qdrant Edge indexes (no mocks): hostile values in every request field (strings past the limits,
NUL and control characters, NaN / inf / negative prices, limits of every sign and size, unknown and
repeated ids, histories past 100, timestamps far in the past and future, category paths hundreds of
levels deep, unknown enum values, unknown variants), and raw bytes that are not a valid message at
all (invalid UTF-8 in a string field, e.g. an encoded lone surrogate; truncated or random bytes).

Properties, for every call: the status is OK, INVALID_ARGUMENT or NOT_FOUND (never INTERNAL or
UNKNOWN); an INVALID_ARGUMENT message is non-empty and names a field of the request; a request that
breaks a documented limit is INVALID_ARGUMENT; an OK list is sane (at most `limit` items, finite
scores, no repeats, nothing excluded, every filter and cap honoured); and the server still answers a
health check and a valid request afterwards. Batch results obey the same rules per request.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, assume, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from vitrine.api.server import MAX_REQUEST_BYTES, GrpcServer, create_grpc_server
from vitrine.api.wire import MAX_FIELDS_LOCATED
from vitrine.catalog.schema import Product, dedup_key
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import VectorIndex
from vitrine.model.inference import InferenceModel, load_inference_model
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.stream.pipeline import encode_products
from vitrine.v1 import catalog_pb2, recommender_pb2_grpc
from vitrine.v1 import recommender_pb2 as pb

pytestmark = pytest.mark.integration

N_PRODUCTS = 300
EXAMPLES = int(os.environ.get("VITRINE_FUZZ_EXAMPLES", "150"))  # per method (long run: 1000)
CALL_TIMEOUT_S = 30.0  # generous: a call that hits it is a hang, and fails the property
VARIANTS = ("control", "treatment")
SERVICE = "/vitrine.v1.Recommender/"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
OK, INVALID, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
ALLOWED = {OK, INVALID, NOT_FOUND}


# -- the world: real models, real Edge shards, a real server -------------------------------------------


@dataclass(repr=False)  # hypothesis prints the fixtures of a failing example
class World:
    products: dict[str, Product]
    server: GrpcServer
    channel: grpc.Channel
    stub: recommender_pb2_grpc.RecommenderStub

    def __repr__(self) -> str:
        return f"World({len(self.products)} products, port {self.server.port})"

    def raw(self, method: str, response: type) -> Callable[..., object]:
        """A unary call that sends the given bytes as they are (what a hostile client can do)."""
        return self.channel.unary_unary(
            SERVICE + method, request_serializer=lambda b: b, response_deserializer=response.FromString
        )


def _fill(index: VectorIndex, model: InferenceModel, products: list[Product]) -> None:
    index.apply(encode_products(model, products))


@pytest.fixture(scope="module")
def world(
    model_dir: Path, complementary_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    products = list(CATALOGUE)
    root = tmp_path_factory.mktemp("fuzz-grpc")
    models: dict[str, ServedModel] = {}
    indexes: list[EdgeIndex] = []
    for name, path in (("sim", model_dir), ("compl", complementary_model_dir)):
        model = load_inference_model(path)
        index = EdgeIndex(EdgeIndexConfig(root / name, model.dim))
        _fill(index, model, products)
        indexes.append(index)
        models[name] = ServedModel(name, model.model_version, model.task, index, model)
    router = ExperimentRouter(
        [Variant(v, 1, similar="sim", complementary="compl", inspire="sim") for v in VARIANTS], salt="fuzz"
    )
    server = create_grpc_server(ModelRegistry(ServingSnapshot(models, router)), RecommenderMetrics())
    server.start()
    server.set_serving(True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield World(
        {p.product_id: p for p in products}, server, channel, recommender_pb2_grpc.RecommenderStub(channel)
    )
    channel.close()
    server.stop(0)
    for index in indexes:
        index.close()


def _alive(world: World) -> None:
    health = health_pb2_grpc.HealthStub(world.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    some = next(iter(world.products))
    assert world.stub.Similar(pb.SimilarRequest(product_id=some, limit=3), timeout=10).model_version


@pytest.fixture
def alive_after(world: World) -> Iterator[World]:
    """The world, checked to still serve after the test's examples."""
    yield world
    _alive(world)


# -- hostile values -----------------------------------------------------------------------------------
#
# Each request draws a few fields to break (none in about half the examples); the other fields get
# values that are valid but odd (NUL and control characters, names of exactly 256 characters, unknown
# ids and sellers, timestamps in year 1 or 9999), so that odd values reach the index and the towers
# too, not only the validation.

# The synthetic catalogue's vocabulary, so that some of what is drawn matches something real.
CATALOGUE = tuple(
    generate(SyntheticConfig(n_products=N_PRODUCTS, seed=5, n_sessions=10, n_baskets=10)).products
)
KNOWN_IDS = sorted(p.product_id for p in CATALOGUE)
OUT_OF_STOCK_IDS = sorted(p.product_id for p in CATALOGUE if not p.availability.purchasable) or KNOWN_IDS
CATEGORY_NAMES = sorted({c for p in CATALOGUE for c in p.category_path})
LEAVES = sorted({p.leaf_category for p in CATALOGUE})
SELLERS = sorted({p.seller for p in CATALOGUE if p.seller})
ODD_TEXT = [  # valid wherever a non-blank name of up to 256 characters is
    "\x00",
    "a\x00b",
    "\u200b",
    "\ufeff",
    "\u202e",
    "\x7f\x1b[31m",
    "%s%n{}",
    "' OR 1=1 --",
    '{"$ne": null}',
    "../../etc/passwd",
    "\U0001f600" * 3,
    "é" * 256,
    "a" * 256,
    "𝔘" * 256,  # 256 characters outside the BMP (1,024 bytes)
]
BLANK_TEXT = ["", " ", "\t\r\n", "\u3000"]


def over(limit: int, unit: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Strings just past `limit` characters, or far past it (hypothesis caps the sizes it draws)."""
    if unit is None:
        unit = st.text(min_size=1, max_size=6)
    return st.tuples(unit, st.sampled_from([1, 2, 50])).map(
        lambda t: (t[0] * (limit * t[1] // len(t[0]) + 1))[: limit * t[1] + 1]
    )


def sized(values: st.SearchStrategy[str], sizes: list[int]) -> st.SearchStrategy[list[str]]:
    """Lists of exactly these sizes (a few drawn values repeated); values are cut to 300 characters,
    as a long list of long values would pass the 4 MiB a request may have."""
    values = values.map(lambda v: v[:300] if isinstance(v, str) else v)
    return st.tuples(st.lists(values, min_size=1, max_size=3), st.sampled_from(sizes)).map(
        lambda t: (t[0] * t[1])[: t[1]]
    )


odd = st.one_of(st.text(min_size=1, max_size=24).filter(str.strip), st.sampled_from(ODD_TEXT))
bad_text = st.one_of(st.sampled_from(BLANK_TEXT), over(256))
good_ids = st.one_of(  # mostly products in the index
    st.sampled_from(KNOWN_IDS),
    st.sampled_from(KNOWN_IDS),
    st.sampled_from(KNOWN_IDS),
    st.sampled_from(OUT_OF_STOCK_IDS),
    st.sampled_from(["p999999", "P000001", "p000001 ", " ", "0", "-1"]),
    odd,
)
bad_ids = st.one_of(st.just(""), over(256))
good_names = st.one_of(st.sampled_from(CATEGORY_NAMES), st.sampled_from(SELLERS), odd)
good_limits = st.one_of(st.integers(min_value=0, max_value=40), st.sampled_from([0, 1, 2, 499, 500]))
bad_limits = st.one_of(
    st.integers(min_value=-(2**31), max_value=-1),
    st.integers(min_value=501, max_value=2**31 - 1),
    st.sampled_from([-1, 501, 2**31 - 1, -(2**31)]),
)
good_prices = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=500),
    st.sampled_from([0.0, -0.0, 1e9, 1e308, 5e-324]),
)
bad_prices = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -5e-324]),
    st.floats(max_value=-1e-300),
    st.floats(allow_nan=True).filter(lambda x: not math.isfinite(x)),
)
good_keys = st.one_of(st.just(""), st.sampled_from(["user-1", "session-42", " "]), odd)
good_variants = st.sampled_from(["", "", *VARIANTS])
bad_variants = st.one_of(st.sampled_from(["Control", "none", "control "]), odd, over(256))


def out_of(low: int, high: int) -> st.SearchStrategy[int]:
    """int32 values outside [low, high]."""
    return st.one_of(
        st.integers(min_value=-(2**31), max_value=low - 1),
        st.integers(min_value=high + 1, max_value=2**31 - 1),
        st.sampled_from([low - 1, high + 1]),
    )


def breaks(draw: st.DrawFn, fields: list[str]) -> set[str]:
    """Which fields this example breaks: none in about half the examples, else one or two."""
    return draw(st.one_of(st.just(set()), st.sets(st.sampled_from(fields), min_size=1, max_size=2)))


FILTER_FIELDS = ["price", "price_order", "names", "name_count", "exclude", "exclude_count", "caps"]


@st.composite
def filters(draw: st.DrawFn, bad: frozenset[str] = frozenset()) -> pb.Filters:
    f = pb.Filters(include_out_of_stock=draw(st.booleans()))
    low, high = draw(bad_prices if "price" in bad else good_prices), draw(good_prices)
    if "price" in bad and draw(st.booleans()):
        low, high = high, low  # the bad value at either end
    if "price_order" in bad:
        low, high = draw(st.floats(min_value=1, max_value=500)), draw(st.floats(min_value=0, max_value=0.5))
    elif low is not None and high is not None and low > high:
        low, high = high, low
    if low is not None:
        f.price_min = low
    if high is not None:
        f.price_max = high
    lists = ("categories_include", "categories_exclude", "sellers_include", "sellers_exclude")
    broken = draw(st.sampled_from(lists))
    for name in lists:
        values = draw(st.lists(good_names, max_size=3) | sized(good_names, [100]))
        if name == broken and "names" in bad:
            values = [*values[:99], draw(bad_text)]
        if name == broken and "name_count" in bad:
            values = draw(sized(good_names, [101, 300]))
        getattr(f, name).extend(values)
    exclude = draw(st.lists(good_ids, max_size=6) | sized(good_ids, [1_000]))
    if "exclude" in bad:
        exclude = [*exclude[:999], draw(bad_ids)]
    if "exclude_count" in bad:
        exclude = draw(sized(good_ids, [1_001, 3_000]))
    f.exclude_product_ids.extend(exclude)
    caps = st.one_of(st.integers(min_value=0, max_value=4), st.just(500))
    f.max_per_seller, f.max_per_category = draw(caps), draw(caps)
    if "caps" in bad:
        setattr(f, draw(st.sampled_from(["max_per_seller", "max_per_category"])), draw(out_of(0, 500)))
    return f


PRODUCT_FIELDS = [
    "title",
    "description",
    "path_depth",
    "path_names",
    "price",
    "currency",
    "availability",
    "attributes",
]


@st.composite
def products(draw: st.DrawFn) -> catalog_pb2.Product:
    """An inline product: a real one with odd but valid values in some fields, and a broken field or
    two in about half the examples."""
    bad = breaks(draw, PRODUCT_FIELDS)
    p = draw(st.sampled_from(CATALOGUE)).to_proto()
    if draw(st.booleans()):
        p.title = draw(st.one_of(odd, st.sampled_from(["x" * 1_000, "\x00" * 1_000])))
    if "title" in bad:
        p.title = draw(st.one_of(st.sampled_from(BLANK_TEXT), over(1_000)))
    if draw(st.booleans()):
        p.description = draw(st.one_of(st.text(max_size=40), st.just("d" * 20_000)))
    if "description" in bad:
        p.description = draw(over(20_000, st.sampled_from(["x", "ab", "é"])))
    if draw(st.booleans()):
        del p.category_path[:]
        level = st.one_of(good_names.map(lambda v: v[:200]), st.just("c" * 200))
        p.category_path.extend(draw(st.lists(level, max_size=10)))
    if "path_depth" in bad:
        p.category_path.extend(draw(sized(good_names, [11, 200, 500])))
    if "path_names" in bad:
        p.category_path.append(draw(st.one_of(st.sampled_from(BLANK_TEXT), over(200))))
    if draw(st.booleans()):
        p.brand, p.seller = draw(st.one_of(st.just(""), odd)), draw(st.one_of(st.just(""), odd))
    if draw(st.booleans()):
        p.ClearField("price")
    else:
        p.price.amount = draw(st.one_of(st.floats(min_value=0, max_value=1e9), st.sampled_from([0.0, 1e9])))
        p.price.currency = draw(st.sampled_from(["EUR", "XXX", "€" * 300, "\x00"]))
        if "price" in bad:
            p.price.amount = draw(st.one_of(bad_prices, st.floats(min_value=1e9, exclude_min=True)))
        if "currency" in bad:
            p.price.currency = ""
    p.availability = draw(st.sampled_from(catalog_pb2.Availability.values()))  # type: ignore[assignment]
    if "availability" in bad:  # proto3 enums are open: any int32 arrives
        p.availability = draw(out_of(0, 4))  # type: ignore[assignment]
    p.attributes.clear()
    n = draw(st.sampled_from([0, 1, 3, 100]))
    if "attributes" in bad:
        n = draw(st.sampled_from([n, 101]))
    value = draw(st.text(max_size=10)) if n == 101 or "attributes" not in bad else draw(over(1_000))
    for i in range(n):
        p.attributes[f"k{i}"] = value
    return p


COMMON_FIELDS = ["limit", "filters", "unit_key", "variant", *FILTER_FIELDS]


def _common(
    draw: st.DrawFn, r: pb.SimilarRequest | pb.ComplementaryRequest | pb.InspireRequest, bad: set[str]
) -> None:
    r.limit = draw(bad_limits if "limit" in bad else good_limits)
    wrong = frozenset(bad & set(FILTER_FIELDS))
    if wrong or draw(st.booleans()):
        r.filters.CopyFrom(draw(filters(wrong)))
    r.unit_key = draw(over(256) if "unit_key" in bad else good_keys)
    r.variant = draw(bad_variants if "variant" in bad else good_variants)


def _anchor(draw: st.DrawFn, r: pb.SimilarRequest | pb.ComplementaryRequest, bad: set[str]) -> None:
    if "anchor" in bad:
        kind = draw(st.sampled_from(["none", "bad id", "product"]))
    else:
        kind = draw(st.sampled_from(["id", "id", "product"]))
    if kind == "id":
        r.product_id = draw(good_ids)
    elif kind == "bad id":
        r.product_id = draw(bad_ids)
    elif kind == "product":
        r.product.CopyFrom(draw(products()))


@st.composite
def similar_requests(draw: st.DrawFn) -> pb.SimilarRequest:
    r = pb.SimilarRequest()
    bad = breaks(draw, ["anchor", *COMMON_FIELDS])
    _anchor(draw, r, bad)
    _common(draw, r, bad)
    return r


@st.composite
def complementary_requests(draw: st.DrawFn) -> pb.ComplementaryRequest:
    r = pb.ComplementaryRequest()
    bad = breaks(draw, ["anchor", "targets", "target_count", *COMMON_FIELDS])
    _anchor(draw, r, bad)
    _common(draw, r, bad)
    targets = st.one_of(st.sampled_from(LEAVES), st.sampled_from(LEAVES), good_names)
    values = draw(st.lists(targets, max_size=4) | sized(targets, [20]))  # repeats are valid
    if "targets" in bad:
        values = [*values[:19], draw(bad_text)]
    if "target_count" in bad:
        values = draw(sized(targets, [21, 200]))
    r.target_categories.extend(values)
    return r


timestamps = st.one_of(  # never validated: any Timestamp orders the history
    st.none(),
    st.tuples(st.integers(min_value=1_600_000_000, max_value=1_800_000_000), st.just(0)),
    st.tuples(
        st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.sampled_from([0, -1, -62135596800, 253402300799, 253402300800, -(2**63), 2**63 - 1]),
        ),
        st.one_of(
            st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from([0, 999_999_999, 10**9])
        ),
    ),
)


@st.composite
def views(draw: st.DrawFn, product_ids: st.SearchStrategy[str] = good_ids) -> pb.ViewedProduct:
    v = pb.ViewedProduct(product_id=draw(product_ids))
    stamp = draw(timestamps)
    if stamp is not None:
        v.viewed_at.seconds, v.viewed_at.nanos = stamp
    return v


INSPIRE_FIELDS = ["history_ids", "history_count", "intent", "both", "neither", "strategy", "clusters", "mmr"]


@st.composite
def inspire_requests(draw: st.DrawFn) -> pb.InspireRequest:
    r = pb.InspireRequest()
    bad = breaks(draw, [*INSPIRE_FIELDS, *COMMON_FIELDS])
    _common(draw, r, bad)
    history = draw(st.lists(views(), min_size=1, max_size=8) | sized(views(), [99, 100]))  # repeats: valid
    if "history_ids" in bad:
        history = [*history[:99], draw(views(bad_ids))]
    if "history_count" in bad:
        history = draw(sized(views(), [101, 150, 400]))
    intent = draw(
        st.one_of(st.sampled_from(["gift for a runner", "coffee", "\x00", " x ", "é" * 1_000]), odd)
    )
    if "intent" in bad:
        intent = draw(over(1_000))
    kind = draw(st.sampled_from(["history", "intent"]))
    if kind == "history" or "both" in bad or "history_ids" in bad or "history_count" in bad:
        r.history.extend(history)
    if kind == "intent" or "both" in bad or "intent" in bad:
        r.intent = intent
    if "neither" in bad:
        r.ClearField("history")
        r.intent = draw(st.sampled_from(BLANK_TEXT))
    if bad & {"strategy", "clusters", "mmr"} or draw(st.booleans()):
        d = r.diversity
        d.strategy = draw(st.sampled_from(pb.Diversity.Strategy.values()))  # type: ignore[assignment]
        d.nearest_clusters = draw(st.integers(min_value=0, max_value=16))
        d.skip_clusters = draw(st.integers(min_value=0, max_value=16))
        d.max_anchors = draw(st.integers(min_value=0, max_value=20))
        mmr = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=1, width=32)))
        if mmr is not None:
            d.mmr_diversity = mmr
        if "strategy" in bad:
            d.strategy = draw(out_of(0, 2))  # type: ignore[assignment]
        if "clusters" in bad:
            name = draw(st.sampled_from(["nearest_clusters", "skip_clusters", "max_anchors"]))
            setattr(d, name, draw(out_of(0, 20 if name == "max_anchors" else 16)))
        if "mmr" in bad:
            d.mmr_diversity = draw(
                st.one_of(
                    st.sampled_from([math.nan, math.inf, -0.5, 1.5]), st.floats(min_value=1.5, width=32)
                )
            )
    return r


@st.composite
def batch_requests(draw: st.DrawFn) -> pb.BatchRequest:
    one = st.one_of(
        similar_requests().map(lambda r: pb.RecommendRequest(similar=r)),
        complementary_requests().map(lambda r: pb.RecommendRequest(complementary=r)),
        inspire_requests().map(lambda r: pb.RecommendRequest(inspire=r)),
    )
    bad = breaks(draw, ["size", "empty_item", "unit_key", "variant"])
    requests = draw(st.lists(one, min_size=1, max_size=5))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        requests = (requests * 32)[:32]  # the most a batch may hold
    if "size" in bad:
        requests = (requests * 100)[: draw(st.sampled_from([0, 33, 100]))]
    if "empty_item" in bad:
        requests.insert(draw(st.integers(min_value=0, max_value=len(requests))), pb.RecommendRequest())
    return pb.BatchRequest(
        requests=requests,
        unit_key=draw(over(256) if "unit_key" in bad else good_keys),
        variant=draw(bad_variants if "variant" in bad else good_variants),
    )


# -- the oracle: documented limits (docs/API.md) that a request breaks ---------------------------------


def _field_names(d: Descriptor, seen: set[str]) -> set[str]:
    if d.full_name in seen:
        return set()
    seen.add(d.full_name)
    out = {f.name for f in d.fields}
    for f in d.fields:
        if f.message_type is not None:
            out |= _field_names(f.message_type, seen)
    return out


FIELD_NAMES = frozenset(_field_names(pb.BatchRequest.DESCRIPTOR, set()))


def names_a_field(message: str) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", message) for name in FIELD_NAMES)


def filter_violations(f: pb.Filters) -> list[str]:
    out = []
    low = f.price_min if f.HasField("price_min") else None
    high = f.price_max if f.HasField("price_max") else None
    for name, v in (("price_min", low), ("price_max", high)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            out.append(name)
    if low is not None and high is not None and low > high:
        out.append("price_min > price_max")
    for name in ("categories_include", "categories_exclude", "sellers_include", "sellers_exclude"):
        values = getattr(f, name)
        if len(values) > 100 or any(not v.strip() or len(v) > 256 for v in values):
            out.append(name)
    ids_ = f.exclude_product_ids
    if len(ids_) > 1_000 or any(not i or len(i) > 256 for i in ids_):
        out.append("exclude_product_ids")
    for name in ("max_per_seller", "max_per_category"):
        if not 0 <= getattr(f, name) <= 500:
            out.append(name)
    return out


def product_violations(p: catalog_pb2.Product) -> list[str]:
    out = []
    if not p.title.strip() or len(p.title) > 1_000:
        out.append("title")
    if len(p.description) > 20_000:
        out.append("description")
    if p.HasField("price"):
        a = p.price.amount
        if not (math.isfinite(a) and 0 <= a <= 1e9) or not p.price.currency:
            out.append("price")
    if len(p.category_path) > 10 or any(not c.strip() or len(c) > 200 for c in p.category_path):
        out.append("category_path")
    if len(p.attributes) > 100 or any(len(k) + len(v) > 1_000 for k, v in p.attributes.items()):
        out.append("attributes")
    if p.availability not in catalog_pb2.Availability.values():
        out.append("availability")
    return out


def routing_violations(
    r: pb.SimilarRequest | pb.ComplementaryRequest | pb.InspireRequest, batch: pb.BatchRequest | None
) -> list[str]:
    unit_key = r.unit_key or (batch.unit_key if batch else "")
    variant = r.variant or (batch.variant if batch else "")
    out = []
    if len(unit_key) > 256:
        out.append("unit_key")
    if variant and variant not in VARIANTS:
        out.append("variant")
    return out


def violations(r: object, batch: pb.BatchRequest | None = None) -> list[str]:
    """The documented limits `r` breaks (each must make it INVALID_ARGUMENT)."""
    out = routing_violations(r, batch)  # type: ignore[arg-type]
    if not 0 <= r.limit <= 500:  # type: ignore[attr-defined]
        out.append("limit")
    out += filter_violations(r.filters)  # type: ignore[attr-defined]
    if isinstance(r, pb.SimilarRequest | pb.ComplementaryRequest):
        if r.WhichOneof("anchor") == "product":
            out += product_violations(r.product)
        elif not r.product_id or len(r.product_id) > 256:
            out.append("product_id")
    if isinstance(r, pb.ComplementaryRequest):
        t = r.target_categories
        if len(t) > 20 or any(not v.strip() or len(v) > 256 for v in t):
            out.append("target_categories")
    if isinstance(r, pb.InspireRequest):
        if r.history and r.intent:
            out.append("history and intent")
        if not r.history and not r.intent.strip():
            out.append("neither history nor intent")
        if len(r.history) > 100 or any(not v.product_id or len(v.product_id) > 256 for v in r.history):
            out.append("history")
        if len(r.intent) > 1_000:
            out.append("intent")
        d = r.diversity
        if d.strategy not in pb.Diversity.Strategy.values():
            out.append("strategy")
        if (
            not 0 <= d.nearest_clusters <= 16
            or not 0 <= d.skip_clusters <= 16
            or not 0 <= d.max_anchors <= 20
            or (
                d.strategy != pb.Diversity.STRATEGY_MMR
                and (d.nearest_clusters or 3) * (d.max_anchors or 5) > 64  # the search budget
            )
        ):
            out.append("diversity")
        if d.HasField("mmr_diversity") and not (0 <= d.mmr_diversity <= 1):  # NaN fails both
            out.append("mmr_diversity")
    return out


def own_leaf(r: pb.ComplementaryRequest, world: World) -> str:
    if r.WhichOneof("anchor") == "product":
        return r.product.category_path[-1] if r.product.category_path else ""
    p = world.products.get(r.product_id)
    return p.leaf_category if p else ""


def expected(r: object, world: World, batch: pb.BatchRequest | None = None) -> grpc.StatusCode | None:
    """The status a request must end with where the docs decide it; None where several may do (an
    unknown id among valid fields is NOT_FOUND or, for an inline anchor, OK)."""
    broken = violations(r, batch)
    if broken:
        return INVALID
    if isinstance(r, pb.InspireRequest):
        known = bool(r.intent.strip()) or any(v.product_id in world.products for v in r.history)
        return OK if known else None
    assert isinstance(r, pb.SimilarRequest | pb.ComplementaryRequest)
    if r.WhichOneof("anchor") != "product" and r.product_id not in world.products:
        return None
    if isinstance(r, pb.ComplementaryRequest) and own_leaf(r, world) in r.target_categories:
        return INVALID  # "the product's own leaf category is never a target (naming it is INVALID_ARGUMENT)"
    return OK


# -- checks -------------------------------------------------------------------------------------------


def call(
    method: Callable[..., object], request: object, timeout: float = CALL_TIMEOUT_S
) -> tuple[grpc.StatusCode, str, object]:
    """The call's status, message and response. Drawn requests stay under the documented 4 MiB (past
    it is RESOURCE_EXHAUSTED, tested on its own below)."""
    if currently_in_test_context():
        size = len(request) if isinstance(request, bytes) else request.ByteSize()  # type: ignore[attr-defined]
        assume(size <= MAX_REQUEST_BYTES)
    try:
        return OK, "", method(request, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def check_error(code: grpc.StatusCode, message: str, allowed: set[grpc.StatusCode] = ALLOWED) -> None:
    assert code in allowed, f"{code.name}: {message}"
    assert message.strip(), f"{code.name} without a message"
    if code == INVALID:
        assert names_a_field(message), f"INVALID_ARGUMENT message names no field: {message!r}"


TASKS = {
    pb.SimilarRequest: pb.TASK_SIMILAR,
    pb.ComplementaryRequest: pb.TASK_COMPLEMENTARY,
    pb.InspireRequest: pb.TASK_INSPIRE,
}


def never_shown(r: object, world: World) -> tuple[set[str], set[str]]:
    """The ids and duplicate keys (normalised title + brand) a list must not hold: the anchor (by id
    or inline) for Similar and Complementary, every history product for Inspire."""
    if isinstance(r, pb.InspireRequest):
        ids_ = {v.product_id for v in r.history}
        return ids_, {dedup_key(world.products[i]) for i in ids_ if i in world.products}
    assert isinstance(r, pb.SimilarRequest | pb.ComplementaryRequest)
    if r.WhichOneof("anchor") == "product":
        return set(), {dedup_key(Product.from_proto("", r.product))}
    return {r.product_id}, {dedup_key(world.products[r.product_id])}


def check_response(r: object, response: pb.RecommendResponse, world: World) -> None:
    """An OK list honours the request."""
    f: pb.Filters = r.filters  # type: ignore[attr-defined]
    items = list(response.items)
    got = [i.product_id for i in items]
    assert len(items) <= (r.limit or 10)  # type: ignore[attr-defined]
    assert response.model_version and response.variant in VARIANTS
    assert all(i.product_id in world.products for i in items), "an item that is not in the catalogue"
    assert all(math.isfinite(i.score) and -1.001 <= i.score <= 1.001 for i in items), "score not a cosine"
    assert all(i.task == TASKS[type(r)] for i in items)
    keys = [dedup_key(world.products[g]) for g in got]
    assert len(set(got)) == len(got) and len(set(keys)) == len(keys), f"repeated items: {got}"
    excluded_ids, excluded_keys = never_shown(r, world)
    assert not set(got) & (excluded_ids | set(f.exclude_product_ids)), "an excluded product"
    assert not set(keys) & excluded_keys, "a duplicate of the anchor or of a viewed product"
    if isinstance(r, pb.ComplementaryRequest):
        leaf = own_leaf(r, world)
        assert not leaf or all(i.category != leaf for i in items)
        if r.target_categories:
            assert all(i.category in r.target_categories for i in items)
    for i in items:
        p = world.products[i.product_id]
        assert f.include_out_of_stock or p.availability.purchasable
        if f.HasField("price_min"):
            assert i.HasField("price") and i.price >= f.price_min
        if f.HasField("price_max"):
            assert i.HasField("price") and i.price <= f.price_max
        if f.categories_include:
            assert set(p.category_path) & set(f.categories_include)
        assert not set(p.category_path) & set(f.categories_exclude)
        if f.sellers_include:
            assert p.seller in f.sellers_include
        assert p.seller not in f.sellers_exclude
    if f.max_per_seller:
        assert max(Counter(i.seller for i in items).values(), default=0) <= f.max_per_seller
    if f.max_per_category:
        assert max(Counter(i.category for i in items).values(), default=0) <= f.max_per_category


def check_single(r: object, code: grpc.StatusCode, message: str, response: object, world: World) -> None:
    event(f"{type(r).__name__}: {code.name}")
    want = expected(r, world)
    assert want is None or code == want, f"wanted {want}, got {code.name}: {message}; breaks {violations(r)}"
    if code == OK:
        check_response(r, response, world)  # type: ignore[arg-type]
    else:
        check_error(code, message)


# -- one property per method --------------------------------------------------------------------------


@FUZZ
@given(r=similar_requests())
def test_similar_survives_hostile_requests(alive_after: World, r: pb.SimilarRequest) -> None:
    check_single(r, *call(alive_after.stub.Similar, r), alive_after)


@FUZZ
@given(r=complementary_requests())
def test_complementary_survives_hostile_requests(alive_after: World, r: pb.ComplementaryRequest) -> None:
    check_single(r, *call(alive_after.stub.Complementary, r), alive_after)


@FUZZ
@given(r=inspire_requests())
def test_inspire_survives_hostile_requests(alive_after: World, r: pb.InspireRequest) -> None:
    check_single(r, *call(alive_after.stub.Inspire, r), alive_after)


def check_batch(
    b: pb.BatchRequest, code: grpc.StatusCode, message: str, response: object, world: World
) -> None:
    """The batch as a whole, then each result as if its request had been sent alone."""
    batch_broken = (
        not 1 <= len(b.requests) <= 32 or len(b.unit_key) > 256 or (b.variant and b.variant not in VARIANTS)
    )
    if batch_broken:
        assert code == INVALID, f"a bad batch got {code.name}: {message}"
    if code != OK:
        check_error(code, message)
        return
    assert isinstance(response, pb.BatchResponse)
    assert len(response.results) == len(b.requests)
    for item, result in zip(b.requests, response.results, strict=True):
        kind = item.WhichOneof("task")
        code_i = next(c for c in grpc.StatusCode if c.value[0] == result.code)
        event(f"Batch result: {code_i.name}")
        if kind is None:
            assert code_i == INVALID and names_a_field(result.error), result.error
            continue
        r = getattr(item, kind)
        want = expected(r, world, b)
        assert want is None or code_i == want, f"wanted {want}, got {code_i.name}: {result.error}"
        if code_i == OK:
            assert not result.error
            check_response(r, result.response, world)
        else:
            check_error(code_i, result.error)


@FUZZ
@given(b=batch_requests())
def test_batch_survives_hostile_requests(alive_after: World, b: pb.BatchRequest) -> None:
    check_batch(b, *call(alive_after.stub.Batch, b), alive_after)


# -- raw bytes: what the generated client would never send ----------------------------------------------

METHODS = {
    "Similar": (pb.SimilarRequest, pb.RecommendResponse),
    "Complementary": (pb.ComplementaryRequest, pb.RecommendResponse),
    "Inspire": (pb.InspireRequest, pb.RecommendResponse),
    "Batch": (pb.BatchRequest, pb.BatchResponse),
}


def string_paths(d: Descriptor, depth: int = 0) -> list[tuple[tuple[FieldDescriptor, ...]]]:
    """Every path of fields from `d` down to a string field (depth-bounded)."""
    out: list = []
    for f in d.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            out.append((f,))
        elif f.type == FieldDescriptor.TYPE_MESSAGE and depth < 4:
            out += [(f, *rest) for rest in string_paths(f.message_type, depth + 1)]
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested(path: tuple[FieldDescriptor, ...], payload: bytes) -> bytes:
    for f in reversed(path):
        payload = _field(f.number, payload)
    return payload


BAD_UTF8 = [
    b"\xed\xa0\x80",  # a lone high surrogate, UTF-8 encoded (CESU)
    b"\xed\xbf\xbf",  # a lone low surrogate
    b"\xc0\x80",  # overlong NUL
    b"\xff\xfe",
    b"\x80",
    b"abc\xe2\x82",  # truncated sequence
    b"\xf4\x90\x80\x80",  # past U+10FFFF
]


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


bad_utf8 = st.one_of(
    st.sampled_from(BAD_UTF8),
    # with bytes around it (which can complete a bad sequence into a good one: those are left out)
    st.tuples(st.binary(max_size=8), st.sampled_from(BAD_UTF8), st.binary(max_size=8))
    .map(b"".join)
    .filter(lambda b: not _is_utf8(b)),
)


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """A valid request of some method with one string field (at any depth) set to invalid UTF-8;
    returns (method, bytes, the dotted path of that field)."""
    method = draw(st.sampled_from(sorted(METHODS)))
    request_type = METHODS[method][0]
    valid = {
        "Similar": similar_requests(),
        "Complementary": complementary_requests(),
        "Inspire": inspire_requests(),
        "Batch": batch_requests(),
    }[method]
    base = draw(st.one_of(st.just(request_type()), valid))
    path = draw(st.sampled_from(string_paths(request_type.DESCRIPTOR)))
    raw = base.SerializeToString() + _nested(path, draw(bad_utf8))
    return method, raw, ".".join(f.name for f in path)


@FUZZ
@given(case=corrupted())
def test_invalid_utf8_in_any_string_field_is_invalid_argument(
    alive_after: World, case: tuple[str, bytes, str]
) -> None:
    method, raw, path = case
    code, message, _ = call(alive_after.raw(method, METHODS[method][1]), raw)
    assert code == INVALID, f"{method} with invalid UTF-8 in {path}: {code.name}: {message}"
    # the message names the field, with its position in repeated fields: requests[3].similar.product_id
    named = r"\.".join(re.escape(part) + r"(\[\d+\])?" for part in path.split("."))
    # (a request of more than MAX_FIELDS_LOCATED fields, e.g. a full Batch, is rejected unnamed)
    located = re.search(rf"\b{named} is not valid UTF-8", message)
    assert located or f"past its first {MAX_FIELDS_LOCATED} fields" in message, (
        f"not naming {path}: {message!r}"
    )


@settings(FUZZ, max_examples=2 * EXAMPLES)  # cheap: most are rejected before any model runs
@given(method=st.sampled_from(sorted(METHODS)), raw=st.binary(max_size=300), cut=st.integers(0, 40))
def test_random_and_truncated_bytes_are_invalid_argument_or_served(
    alive_after: World, method: str, raw: bytes, cut: int
) -> None:
    """Bytes that do not parse are INVALID_ARGUMENT naming the message type (and the field, where
    there is one); random bytes often do parse (unknown fields are skipped), and are then held to the
    same properties as any request."""
    request_type, response_type = METHODS[method]
    raw = raw[: max(0, len(raw) - cut)]
    code, message, response = call(alive_after.raw(method, response_type), raw)
    try:
        request = request_type.FromString(raw)
    except DecodeError:
        assert code == INVALID, f"undecodable bytes got {code.name}: {message}"
        assert f"not a valid {request_type.DESCRIPTOR.full_name}" in message, message
        return
    if isinstance(request, pb.BatchRequest):
        check_batch(request, code, message, response, alive_after)
    else:
        check_single(request, code, message, response, alive_after)


# -- deadlines and sizes, on purpose ------------------------------------------------------------------


@settings(FUZZ, max_examples=40)
@given(
    case=st.one_of(
        similar_requests().map(lambda r: ("Similar", r)), batch_requests().map(lambda b: ("Batch", b))
    ),
    timeout=st.sampled_from([1e-4, 1e-3, 5e-3, 2e-2, 5e-2]),
)
def test_tiny_deadlines_end_in_deadline_exceeded_or_an_answer(
    alive_after: World, case: tuple[str, object], timeout: float
) -> None:
    """The one place DEADLINE_EXCEEDED is allowed: deadlines set short on purpose (a batch checks its
    deadline between its requests)."""
    method, r = case
    code, message, response = call(getattr(alive_after.stub, method), r, timeout=timeout)
    event(f"{method}: {code.name}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return
    if isinstance(r, pb.BatchRequest):
        check_batch(r, code, message, response, alive_after)
    else:
        check_single(r, code, message, response, alive_after)


def test_a_request_past_4_mib_is_resource_exhausted(alive_after: World) -> None:
    request = pb.SimilarRequest(product_id="x" * (5 << 20))
    with pytest.raises(grpc.RpcError) as e:
        alive_after.stub.Similar(request, timeout=CALL_TIMEOUT_S)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()


# -- the bugs this module found, pinned ---------------------------------------------------------------


def test_a_lone_surrogate_in_a_string_field_is_invalid_argument_not_internal(alive_after: World) -> None:
    """Was INTERNAL "Exception deserializing request!": gRPC's own answer to bytes that do not parse."""
    raw = pb.SimilarRequest(limit=3).SerializeToString() + _field(1, b"p\xed\xa0\x80")
    code, message, _ = call(alive_after.raw("Similar", pb.RecommendResponse), raw)
    assert (code, message) == (
        INVALID,
        "the request is not a valid vitrine.v1.SimilarRequest: product_id is not valid UTF-8 (byte 1)",
    )
    truncated = pb.BatchRequest(requests=[pb.RecommendRequest(similar=pb.SimilarRequest(product_id="p1"))])
    code, message, _ = call(alive_after.raw("Batch", pb.BatchResponse), truncated.SerializeToString()[:-1])
    assert code == INVALID and "requests[0] is truncated" in message, message


def test_an_unknown_availability_of_an_inline_product_is_invalid_argument_not_internal(
    alive_after: World,
) -> None:
    """Was INTERNAL: Product.from_proto raised ValueError for an enum value it does not know."""
    product = CATALOGUE[0].to_proto()
    product.availability = 7  # type: ignore[assignment]
    code, message, _ = call(alive_after.stub.Similar, pb.SimilarRequest(product=product))
    assert code == INVALID and message.startswith("product.availability 7 is unknown"), message
    batch = pb.BatchRequest(
        requests=[pb.RecommendRequest(complementary=pb.ComplementaryRequest(product=product))]
    )
    code, message, response = call(alive_after.stub.Batch, batch)
    assert code == OK and response.results[0].code == INVALID.value[0], response  # type: ignore[attr-defined]
