"""Requests whose bytes are not a valid message: an INVALID_ARGUMENT that names the field, not INTERNAL.

gRPC deserializes a request before any handler runs, and answers one it cannot deserialize with
INTERNAL ("Exception deserializing request!"), which reads as a server bug. A client can send such
bytes: a proto3 string that is not valid UTF-8 (an encoded lone surrogate, an overlong NUL), a
truncated message, a corrupt wire format. The servicer is therefore registered with `lenient`
deserializers: bytes that do not parse become an `Undecodable` whose message says which field is at
fault (`filters.categories_include[1] is not valid UTF-8`), and the servicer answers INVALID_ARGUMENT
with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

MAX_FIELD_NUMBER = 2**29 - 1
MAX_FIELDS_LOCATED = 50_000  # fields looked at to name the one at fault (about 0.2 s at most)
MAX_GROUP_DEPTH = 64  # nested (unknown) groups are skipped to this depth, deeper is a problem in itself


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a lenient deserializer returns for bytes that are not a valid request."""

    message: str  # names the message type, and the field at fault where one can be found


def lenient(message_type: type[Message]) -> Callable[[bytes], Any]:
    """A request deserializer that never raises: bytes that do not parse become an `Undecodable`."""
    descriptor: Descriptor = message_type.DESCRIPTOR

    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except (DecodeError, RuntimeError, ValueError):
            where = problem(descriptor, data) or "the bytes are not a valid message"
            return Undecodable(f"the request is not a valid {descriptor.full_name}: {where}")

    return parse


class _Problem(Exception):
    pass


class _OverBudget(Exception):
    pass


def problem(descriptor: Descriptor, data: bytes, budget: int = MAX_FIELDS_LOCATED) -> str | None:
    """What makes `data` unparsable as `descriptor`, naming the field (dotted path, with the position
    in repeated fields); None when the wire format looks valid. Only the first `budget` fields are
    looked at (this runs in Python, the parser that failed in C: a 4 MiB request of tiny fields would
    otherwise cost seconds)."""
    try:
        _Walk(budget).message(descriptor, data, "")
    except _Problem as e:
        return str(e)
    except _OverBudget:
        return f"the fault lies past its first {budget} fields"
    return None


class _Walk:
    def __init__(self, budget: int) -> None:
        self.left = budget
        # values of each repeated field so far, by path: occurrences of a singular message field
        # merge, so their repeated fields keep counting across them
        self.seen: dict[str, int] = {}

    def message(self, d: Descriptor | None, data: bytes, path: str) -> None:
        pos, end = 0, len(data)
        last = ""
        while pos < end:
            self.left -= 1
            if self.left < 0:
                raise _OverBudget
            tag, pos = _varint(data, pos, f"a field tag{_after(path, last)}")
            number, wire = tag >> 3, tag & 7
            if not 1 <= number <= MAX_FIELD_NUMBER:
                raise _Problem(f"the field number {number}{_after(path, last)} is out of range")
            field = d.fields_by_number.get(number) if d is not None else None
            name = self.name(path, field, number)
            pos = self.skip(data, pos, wire, number, name, field, 0)
            last = name

    def skip(
        self,
        data: bytes,
        pos: int,
        wire: int,
        number: int,
        name: str,
        field: FieldDescriptor | None,
        depth: int,
    ) -> int:
        end = len(data)
        if wire == 0:
            return _varint(data, pos, name)[1]
        if wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Problem(f"{name} is truncated")
            return pos + size
        if wire == 2:
            length, pos = _varint(data, pos, name)
            if pos + length > end:
                raise _Problem(f"{name} is truncated ({length} bytes announced, {end - pos} left)")
            chunk = data[pos : pos + length]
            if field is not None and field.type == FieldDescriptor.TYPE_STRING:
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise _Problem(f"{name} is not valid UTF-8 (byte {e.start})") from e
            elif field is not None and field.type == FieldDescriptor.TYPE_MESSAGE:
                self.message(field.message_type, chunk, name)
            return pos + length
        if wire == 3:  # a group (proto2); skipped up to its end-group tag
            if depth >= MAX_GROUP_DEPTH:
                raise _Problem(f"{name} nests groups too deeply")
            while True:
                if pos >= end:
                    raise _Problem(f"{name} is a group without its end")
                tag, pos = _varint(data, pos, name)
                inner_number, inner_wire = tag >> 3, tag & 7
                if not 1 <= inner_number <= MAX_FIELD_NUMBER:
                    raise _Problem(f"{name} holds the field number {inner_number}, out of range")
                if inner_wire == 4:
                    if inner_number != number:
                        raise _Problem(f"{name} ends with the wrong group end")
                    return pos
                pos = self.skip(data, pos, inner_wire, inner_number, name, None, depth + 1)
        if wire == 4:
            raise _Problem(f"{name} is a group end without its start")
        raise _Problem(f"{name} has the invalid wire type {wire}")

    def name(self, path: str, field: FieldDescriptor | None, number: int) -> str:
        label = field.name if field is not None else f"field {number}"
        name = f"{path}.{label}" if path else label
        if field is not None and field.is_repeated:
            index = self.seen.get(name, 0)
            self.seen[name] = index + 1
            name = f"{name}[{index}]"
        return name


def _varint(data: bytes, pos: int, name: str) -> tuple[int, int]:
    value = shift = 0
    for i in range(10):
        if pos + i >= len(data):
            raise _Problem(f"{name} is truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise _Problem(f"{name} is a varint longer than 10 bytes")


def _after(path: str, last: str) -> str:
    where = f" after {last}" if last else ""
    return f" in {path}{where}" if path else where
