"""The wire protocol between a crawl and a ``crawlmesh node`` service.

JSON, encoded and validated with msgspec on both sides.

* ``POST /scrape`` with a :class:`ScrapeRequest` answers 200 with a
  :class:`ScrapeResult` (whatever the target's status), or an error status
  with ``{"error": {"code": ..., "message": ...}}`` (:class:`ErrorBody`).
* ``GET /health`` answers a :class:`Health` record.

Error codes say whose fault a failure is. The target's (:data:`TARGET_ERRORS`:
``target_*``, ``too_large``, ``blocked_address``) count against the (node,
domain) pair like any failed fetch, and ``invalid_request`` is the request's
own; every other code (``overloaded``, ``draining``, ``rate_limited``,
``unauthorized``, ``internal``, ...) is the node's and counts against it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .._exceptions import (
    BlockedAddress,
    ConnectFailed,
    ConnectionBroken,
    DecodingFailed,
    FetchError,
    FetchTimeout,
    RedirectError,
    ResponseTooLarge,
)

__all__ = [
    "TARGET_ERRORS",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "ScrapeRequest",
    "ScrapeResult",
    "target_failure",
]

TARGET_ERRORS: dict[str, tuple[type[FetchError], int]] = {
    # code: (the crawl-side error, the node's HTTP status). Most specific
    # class first: the node picks the first its error is an instance of.
    "blocked_address": (BlockedAddress, 403),
    "target_timeout": (FetchTimeout, 504),
    "target_refused": (ConnectFailed, 502),
    "target_reset": (ConnectionBroken, 502),
    "target_redirect": (RedirectError, 502),
    "target_decoding": (DecodingFailed, 502),
    "too_large": (ResponseTooLarge, 502),
    "target_error": (FetchError, 502),
}
"""Failures that are the target's, not the node's. ``ErrorDetail.kind``
carries the precise crawl-side kind (``connect_timeout``, ``redirect_loop``)."""


class ScrapeRequest(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str = ""
    """Base64 of the request body."""
    timeout: float = 30.0
    session_id: str | None = None
    reset_session: bool = False
    """Start the session afresh on the node (its cookie jar is dropped)."""
    max_size: int = 10 * 1024 * 1024


class ScrapeResult(msgspec.Struct):
    status: int
    url: str
    """The final URL, after redirects."""
    headers: list[tuple[str, str]]
    body: str
    body_encoding: Literal["utf-8", "base64"] = "base64"
    elapsed: float = 0.0
    node: str = ""
    redirects: list[str] = []


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str = ""
    kind: str = ""
    """For target failures: the fetch error's kind (e.g. ``read_timeout``)."""


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class Health(msgspec.Struct):
    status: Literal["healthy", "degraded", "draining"]
    """Required: an answer without it is not a health record."""
    cpu_usage: float | None = 0.0
    """Percent of one CPU the node's process used lately; null when the
    node shares its process (the demo's) and cannot tell its own share."""
    memory: int = 0
    queue_size: int = 0
    in_flight: int = 0
    uptime: float = 0.0
    version: str = ""
    name: str = ""
    region: str = ""


def target_failure(exc: FetchError) -> tuple[int, ErrorBody]:
    """The node's answer (HTTP status and body) to a fetch that failed."""
    if exc.kind in ("invalid_url", "invalid_request"):
        return 400, ErrorBody(ErrorDetail("invalid_request", str(exc), exc.kind))
    for code, (cls, status) in TARGET_ERRORS.items():
        if isinstance(exc, cls):
            return status, ErrorBody(ErrorDetail(code, str(exc), exc.kind))
    raise AssertionError("unreachable: FetchError is the last entry")  # pragma: no cover
