"""The wire protocol between a crawl and a ``crawlmesh node`` service.

JSON, encoded and validated with msgspec on both sides.

* ``POST /scrape`` with a :class:`ScrapeRequest` answers 200 with a
  :class:`ScrapeResult` (whatever the target's status), or an error status
  with ``{"error": {"code": ..., "message": ...}}`` (:class:`ErrorBody`).
* ``GET /health`` answers a :class:`Health` record.

Error codes say whose fault a failure is. The node's own (``overloaded``,
``draining``, ``unauthorized``, ``internal``) count against the node; the
target's (``target_*``, ``too_large``, ``blocked_address``) against the
(node, domain) pair, like any failed fetch.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "NODE_FAULT_CODES",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "ScrapeRequest",
    "ScrapeResult",
]

NODE_FAULT_CODES = frozenset({"overloaded", "draining", "unauthorized", "internal"})


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


class ErrorDetail(msgspec.Struct):
    code: str
    message: str = ""


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class Health(msgspec.Struct):
    status: Literal["healthy", "degraded", "draining"]
    """Required: an answer without it is not a health record."""
    cpu_usage: float = 0.0
    memory: int = 0
    queue_size: int = 0
    in_flight: int = 0
    uptime: float = 0.0
    version: str = ""
