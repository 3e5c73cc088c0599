"""Overload bounds of the recommender's gRPC server, as small separate pieces with one settings object.

- **Admission**: at most `max_concurrent_rpcs` calls run (the handler threads) and `max_queued_rpcs`
  more wait; a call beyond that is refused at once with RESOURCE_EXHAUSTED, before it queues, by
  gRPC's own `maximum_concurrent_rpcs` server option (`server_kwargs`). So latency of admitted calls
  stays bounded by the queue, not by the offered load, and memory by the calls admitted. The bound
  counts every call, the health service's too: a replica that is saturated for long also fails its
  readiness probe, which moves traffic to other replicas.
- **Response size**: a response above `max_response_bytes` is refused with RESOURCE_EXHAUSTED and a
  message saying how to ask for less (`check_response_size`); a Batch checks as it builds, so it never
  holds more than the bound and one result (a 502-byte Batch asked for a 23 MB response before).
  gRPC's `grpc.max_send_message_length` is set just above it as a backstop (`server_options`).
- **Default deadline**: a call whose client set no deadline gets `default_deadline_s` on the server
  (`vitrine.serving.deadline.Deadline(..., default_s=...)`): work for a caller that has gone away
  stops.

Carried over unchanged to a `grpc.aio` server: it takes the same `maximum_concurrent_rpcs` and options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from vitrine.errors import VitrineError


class ResponseTooLargeError(VitrineError):
    """A response would exceed the server's bound (maps to RESOURCE_EXHAUSTED)."""

    code = "resource_exhausted"


class SizedMessage(Protocol):
    def ByteSize(self) -> int: ...  # protobuf naming


@dataclass(frozen=True)
class OverloadLimits:
    max_concurrent_rpcs: int = 8
    max_queued_rpcs: int = 16
    max_response_bytes: int = 4 * 1024 * 1024
    default_deadline_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_concurrent_rpcs < 1 or self.max_queued_rpcs < 0:
            raise ValueError("max_concurrent_rpcs >= 1 and max_queued_rpcs >= 0 are required")
        if self.max_response_bytes < 1024 or self.default_deadline_s <= 0:
            raise ValueError("max_response_bytes >= 1024 and default_deadline_s > 0 are required")

    @property
    def admitted(self) -> int:
        """Calls running or queued at most; the next one is refused."""
        return self.max_concurrent_rpcs + self.max_queued_rpcs

    def server_kwargs(self) -> dict[str, Any]:
        """For `grpc.server(...)` / `grpc.aio.server(...)`."""
        return {"maximum_concurrent_rpcs": self.admitted}

    def server_options(self) -> list[tuple[str, Any]]:
        return [("grpc.max_send_message_length", self.max_response_bytes + 64 * 1024)]

    def check_response_size(self, message: SizedMessage, what: str = "the response") -> None:
        size = message.ByteSize()
        if size > self.max_response_bytes:
            raise ResponseTooLargeError(
                f"{what} would be {size:,} bytes, above this server's {self.max_response_bytes:,}: ask for "
                "fewer items (a lower limit, fewer requests in a Batch)"
            )
