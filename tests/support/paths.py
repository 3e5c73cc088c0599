"""Follow one catalogue event, or one request, through the library: the files it enters, in order.

A file is *entered* when a call passes into a function of it from another file (a call from
kafka-python or gRPC into the library counts too). Not entries: calls inside a file, returns, the
resumption of a generator (the end of a `with` block), reading a property (a value, not a step), and
a loop calling the same function again (counted once). Generated code (`vitrine/v1`) and dataclass
constructors (code without a file) are not library files. docs/ARCHITECTURE.md lists both paths;
tests/integration/test_architecture_paths.py checks the lists against a trace of the real code.
"""

from __future__ import annotations

import dis
import inspect
import sys
import threading
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import vitrine

LIBRARY = Path(vitrine.__file__).resolve().parent
REPO = LIBRARY.parents[1]
GENERATED = LIBRARY / "v1"
_RESUME = dis.opmap["RESUME"]
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _library_file(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_absolute():
        return None  # "<string>": a dataclass's generated __init__, and the like
    try:
        path.resolve().relative_to(LIBRARY)
    except ValueError:
        return None
    if path.resolve().is_relative_to(GENERATED):
        return None
    return str(path.resolve().relative_to(REPO))


def _resumed(frame: FrameType) -> bool:
    """A generator or coroutine picking up after a yield, not starting."""
    if not frame.f_code.co_flags & _RESUMABLE:
        return False
    code = frame.f_code.co_code
    return code[frame.f_lasti] == _RESUME and code[frame.f_lasti + 1] != 0


@dataclass(frozen=True)
class Call:
    thread: int
    file: str | None  # the library file of the called function; None for a marker outside it
    function: str  # qualified name, e.g. "EncoderWorker.run"
    entry: bool  # control passed into `file` from another file
    caller: str  # the calling function's qualified name
    property: bool = False  # the getter of a property


@dataclass
class Trace:
    calls: list[Call] = field(default_factory=list)

    def between(self, start: str, end: str, thread: int) -> list[Call]:
        """The calls of `thread` from the last call of `start` before the first `end`, to `end`."""
        calls = [c for c in self.calls if c.thread == thread]
        stop = next(i for i, c in enumerate(calls) if c.function == end)
        begin = max(i for i, c in enumerate(calls[:stop]) if c.function == start)
        return calls[begin:stop]

    def thread_of(self, function: str) -> int:
        return next(c.thread for c in self.calls if c.function == function)


def entries(calls: list[Call], started_in: str | None = None) -> list[tuple[str, int]]:
    """(file, times entered) in the order of first entry; `started_in`: the file whose code was
    already running when `calls` begin (entered once, first)."""
    order = [started_in] if started_in else []
    last: tuple[str, str] | None = None
    for c in calls:
        if not (c.entry and c.file) or c.property:
            continue
        if (c.caller, c.function) != last:  # the same call again in a loop counts once
            order.append(c.file)
        last = (c.caller, c.function)
    counts = Counter(order)
    return [(f, counts[f]) for f in dict.fromkeys(order)]


def _is_property(code: CodeType) -> bool:
    """Whether `code` is a property's getter (looked up once per code object)."""
    module = sys.modules.get((code.co_filename and _module_of(code.co_filename)) or "")
    owner: Any = module
    *path, name = code.co_qualname.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    attribute = inspect.getattr_static(owner, name, None) if owner is not None else None
    return isinstance(attribute, property) and attribute.fget is not None and attribute.fget.__code__ is code


def _module_of(filename: str) -> str:
    relative = Path(filename).resolve().relative_to(LIBRARY.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


@contextmanager
def tracing(markers: Collection[str] = ()) -> Iterator[Trace]:
    """Record the library calls of this thread and of the threads started meanwhile until the block
    ends, and the calls of functions named in `markers` (test code that marks where a path ends)."""
    trace = Trace()
    files: dict[str, str | None] = {}
    properties: dict[CodeType, bool] = {}

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or _resumed(frame):
            return
        code = frame.f_code
        if code.co_filename not in files:
            files[code.co_filename] = _library_file(code.co_filename)
        callee = files[code.co_filename]
        if callee is None and code.co_name not in markers:
            return
        back = frame.f_back.f_code if frame.f_back is not None else None
        entry = callee is not None and (back is None or code.co_filename != back.co_filename)
        if entry and code not in properties:
            properties[code] = _is_property(code)
        caller = back.co_qualname if back is not None else ""
        function = code.co_qualname if callee is not None else code.co_name  # a marker: its name
        trace.calls.append(
            Call(threading.get_ident(), callee, function, entry, caller, entry and properties[code])
        )

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield trace
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
