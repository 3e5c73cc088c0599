"""Deadlines: stop working for a caller who has given up.

gRPC cancels nothing inside a handler by itself; long requests (a batch, an Inspire with many anchors)
check between their steps and stop with `DeadlineExceededError`.
"""

from __future__ import annotations

import time
from typing import Protocol

from vitrine.serving.errors import DeadlineExceededError

# grpcio's time_remaining() without a client deadline is the distance to its "infinite future"
NO_DEADLINE_S = 1e7


class CallContext(Protocol):
    def time_remaining(self) -> float | None: ...

    def is_active(self) -> bool: ...


class Deadline:
    """`timeout_s` caps what the caller allows; `default_s` applies when the caller set no deadline
    (the server's default: nobody waits for ever, so nobody should be worked for for ever)."""

    def __init__(
        self,
        context: CallContext | None = None,
        timeout_s: float | None = None,
        default_s: float | None = None,
    ) -> None:
        self._context = context
        remaining = context.time_remaining() if context is not None else None
        if remaining is None or remaining > NO_DEADLINE_S:  # gRPC reports "none" as the far future
            remaining = default_s
        if timeout_s is not None:
            remaining = timeout_s if remaining is None else min(remaining, timeout_s)
        self._at = None if remaining is None else time.monotonic() + remaining

    @classmethod
    def none(cls) -> Deadline:
        return cls()

    def check(self, what: str = "the request") -> None:
        if self._context is not None and not self._context.is_active():
            raise DeadlineExceededError(f"the caller cancelled {what}")
        if self._at is not None and time.monotonic() >= self._at:
            raise DeadlineExceededError(f"the deadline passed before {what} was done")
