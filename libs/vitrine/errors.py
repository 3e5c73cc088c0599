"""One exception root for the library. Subclasses carry a short machine-readable code."""

from __future__ import annotations


class VitrineError(Exception):
    """Base of every error vitrine raises on purpose."""

    code: str = "vitrine_error"

    def __str__(self) -> str:
        return super().__str__() or self.code


class ConfigError(VitrineError):
    """Invalid or missing configuration (reported at start, before any work)."""

    code = "config_error"


class PortInUseError(ConfigError):
    """A service cannot listen where it is configured to: another process holds the address."""

    code = "port_in_use"


class InvalidEventError(VitrineError):
    """A catalogue event that cannot be processed; `reason` goes to the dead-letter headers."""

    code = "invalid_event"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidRequestError(VitrineError):
    """A bad API request (maps to gRPC INVALID_ARGUMENT)."""

    code = "invalid_argument"


class NotFoundError(VitrineError):
    """A product or resource that does not exist (maps to gRPC NOT_FOUND)."""

    code = "not_found"


class IndexBackendError(VitrineError):
    """The vector index failed to read or write.

    `retriable`: the engine was unavailable (a connection refused, a timeout, a 5xx): the same call
    may succeed later. False: the engine refused what it was given (a 4xx, a point it cannot store),
    which no retry changes; the encoder dead-letters the record behind it (`vitrine.stream.failures`).
    """

    code = "index_error"

    def __init__(self, message: str = "", *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class DataError(VitrineError):
    """A dataset file is missing or malformed."""

    code = "data_error"
