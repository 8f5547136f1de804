"""The local stack's one error type: every failure says what to do next."""

from __future__ import annotations

from simstream.core.errors import SimstreamError


class DevStackError(SimstreamError):
    """The local stack cannot be fetched, started, reached or stopped."""
