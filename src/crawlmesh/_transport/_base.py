"""The transport interface every node kind implements."""

from __future__ import annotations

from typing import Protocol

import msgspec

from .._request import Request
from .._response import Response

__all__ = ["FetchOptions", "Transport"]


class FetchOptions(msgspec.Struct, frozen=True):
    """Per-fetch limits, resolved by the fetch stage from settings."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_response_size: int = 10 * 1024 * 1024
    max_redirects: int = 10
    user_agent: str = ""
    default_headers: dict[str, str] = {}


class Transport(Protocol):
    """Fetches one request, following redirects, and returns the response.

    Implementations raise :class:`~crawlmesh.FetchError` subclasses (never a
    third-party exception) and must be safe to call from many tasks at once.
    The whole-request deadline is the caller's (a cancel scope around
    :meth:`fetch`).
    """

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        """Fetch ``request`` and return its final response."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""
        ...
