"""Errors of the serving layer that have no place in `vitrine.errors`' input/data vocabulary; like every
library error they derive from `VitrineError`, and `vitrine.api.servicer` maps them to status codes in one place."""

from __future__ import annotations

from vitrine.errors import VitrineError


class NotConfiguredError(VitrineError):
    """The served variant has no model for the task asked (maps to gRPC FAILED_PRECONDITION)."""

    code = "not_configured"


class DeadlineExceededError(VitrineError):
    """The caller's deadline passed, or the caller went away, before the work was done."""

    code = "deadline_exceeded"
