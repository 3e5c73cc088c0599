"""Requests whose bytes do not parse (found by tests/reliability/test_fuzz_grpc.py): gRPC answered them
with INTERNAL ("Exception deserializing request!") before any handler ran. The lenient deserializers
turn them into INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from typing import NoReturn

import grpc
import pytest

from vitrine.api.servicer import RecommenderServicer
from vitrine.api.wire import Undecodable, lenient, problem
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.v1 import recommender_pb2 as pb

LONE_SURROGATE = b"\xed\xa0\x80"  # U+D800 encoded as if it were a character: not UTF-8


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_valid_bytes_parse_as_usual() -> None:
    request = pb.SimilarRequest(product_id="p1", limit=3, filters=pb.Filters(categories_include=["Audio"]))
    assert lenient(pb.SimilarRequest)(request.SerializeToString()) == request
    assert problem(pb.SimilarRequest.DESCRIPTOR, request.SerializeToString()) is None


def test_invalid_utf8_names_the_field_with_its_position() -> None:
    valid = pb.SimilarRequest(product_id="p1", filters=pb.Filters(categories_include=["Audio"]))
    # filters (3) . categories_include (4): a second value that is not UTF-8
    raw = valid.SerializeToString() + _field(3, _field(4, LONE_SURROGATE))
    parsed = lenient(pb.SimilarRequest)(raw)
    assert isinstance(parsed, Undecodable)
    assert parsed.message == (
        "the request is not a valid vitrine.v1.SimilarRequest: "
        "filters.categories_include[1] is not valid UTF-8 (byte 0)"
    )


def test_invalid_utf8_deep_in_a_batch() -> None:
    # requests (1) [0] . inspire (3) . history (1) [0] . product_id (1)
    raw = _field(1, _field(3, _field(1, _field(1, b"ok\xc0\x80"))))
    parsed = lenient(pb.BatchRequest)(raw)
    assert isinstance(parsed, Undecodable)
    assert "requests[0].inspire.history[0].product_id is not valid UTF-8 (byte 2)" in parsed.message


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (_field(1, b"p1")[:-1], "product_id is truncated"),
        (b"\x0a", "product_id is truncated"),
        (b"\x10" + b"\xff" * 10, "limit is a varint longer than 10 bytes"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x00\x00", "field number 0"),
    ],
)
def test_corrupt_wire_format_is_located(raw: bytes, where: str) -> None:
    parsed = lenient(pb.SimilarRequest)(raw)
    assert isinstance(parsed, Undecodable) and where in parsed.message, parsed


def test_locating_the_fault_is_bounded() -> None:
    """The walk runs in Python: a 4 MiB request of tiny fields must not cost seconds to describe."""
    raw = pb.SimilarRequest(filters=pb.Filters(exclude_product_ids=["a"] * 20)).SerializeToString()
    bad = raw[:-1] + b"\xff"
    assert problem(pb.SimilarRequest.DESCRIPTOR, bad, budget=10) == "the fault lies past its first 10 fields"
    assert problem(pb.SimilarRequest.DESCRIPTOR, bad) == (
        "filters.exclude_product_ids[19] is not valid UTF-8 (byte 0)"
    )


class _Aborted(Exception):
    pass


class _Context:
    code: grpc.StatusCode | None = None
    details = ""

    def time_remaining(self) -> float | None:
        return None

    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise _Aborted


def _no_snapshot() -> NoReturn:
    raise AssertionError("an undecodable request must not reach the models")


@pytest.mark.parametrize("method", ["Similar", "Complementary", "Inspire", "Batch"])
def test_the_servicer_answers_undecodable_requests_with_invalid_argument(method: str) -> None:
    metrics = RecommenderMetrics()
    servicer = RecommenderServicer(_no_snapshot, metrics)  # type: ignore[arg-type]
    context = _Context()
    with pytest.raises(_Aborted):
        getattr(servicer, method)(Undecodable("the request is not valid: product_id is not UTF-8"), context)
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "the request is not valid: product_id is not UTF-8"
    counted = metrics.requests.labels(method, "INVALID_ARGUMENT", "none")._value.get()
    assert counted == 1
