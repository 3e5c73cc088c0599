"""Hypothesis strategies for hostile catalogue events, shared by the decoding fuzzer and the
pipeline fuzzer."""

from __future__ import annotations

from hypothesis import strategies as st

from vitrine.catalog.schema import SCHEMA_VERSION
from vitrine.catalog.validation import ValidationLimits
from vitrine.v1 import catalog_pb2

LIMITS = ValidationLimits()
text = st.text(max_size=300) | st.text(min_size=900, max_size=1200) | st.just("")
price = st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=0, max_value=1e4)


@st.composite
def events(draw: st.DrawFn) -> bytes:
    pb = catalog_pb2.ProductEvent(
        schema_version=draw(st.sampled_from([SCHEMA_VERSION, SCHEMA_VERSION, 0, 2, 2**32 - 1])),
        product_id=draw(text),
        version=draw(st.integers(min_value=0, max_value=2**64 - 1)),
    )
    if draw(st.booleans()):  # far past, far future and out of Timestamp's range
        pb.event_time.seconds = draw(st.integers(-(2**63), 2**63 - 1))
        pb.event_time.nanos = draw(st.integers(-(2**31), 2**31 - 1))
    if draw(st.booleans()):
        pb.delete.SetInParent()
    elif draw(st.booleans()):
        p = pb.upsert
        p.title = draw(text)
        # oversized descriptions: a drawn unit repeated past the limit (hypothesis caps text sizes)
        unit = draw(st.text(min_size=1, max_size=10))
        p.description = draw(
            st.sampled_from(["", unit, unit * (LIMITS.max_description_chars // len(unit) + 1)])
        )
        p.category_path.extend(draw(st.lists(text, max_size=14)))
        p.brand = draw(text)
        if draw(st.booleans()):
            p.price.amount = draw(price)
            p.price.currency = draw(st.sampled_from(["EUR", "", "PLN"]))
        # proto3 enums carry any int32: a newer producer's value must be dead-lettered, not crash
        p.availability = draw(
            st.one_of(st.integers(min_value=0, max_value=4), st.integers(-(2**31), 2**31 - 1))
        )
        for k, v in draw(st.dictionaries(st.text(max_size=20), st.text(max_size=600), max_size=5)).items():
            p.attributes[k] = v
    return pb.SerializeToString()
