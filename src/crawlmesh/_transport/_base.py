"""The transport interface every node kind implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import httpx
import msgspec

from .._exceptions import FetchError, TransportSignal
from .._request import Request
from .._response import Response

__all__ = [
    "ClassifiedError",
    "FetchOptions",
    "SessionKeeper",
    "Transport",
    "is_node_fault",
    "session_forgetter",
]


class FetchOptions(msgspec.Struct, frozen=True):
    """Per-fetch limits, resolved by the fetch stage from settings."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_response_size: int = 10 * 1024 * 1024
    max_redirects: int = 10
    user_agent: str = ""
    default_headers: dict[str, str] = {}
    avoid_nodes: frozenset[str] = frozenset()
    """Nodes that already failed this request: the balancer picks another
    when one is available."""
    attempt: int = 1
    """Which attempt at the request this is, from 1 (for logs)."""


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


@runtime_checkable
class SessionKeeper(Protocol):
    """An optional part of a :class:`Transport`: one that keeps state per
    session (a cookie jar, a node's session) and can drop it.

    The balancer calls :meth:`forget_session` when a session moves off the
    node, so the node's stale jar is not used when the session comes back.
    The direct, proxy and node transports implement it; a transport that
    keeps nothing per session need not.
    """

    def forget_session(self, session: str) -> None:
        """Drop what is kept for ``session``."""
        ...


def _keeps_nothing(session: str) -> None:
    """What forgetting a session takes on a transport that keeps none."""


def session_forgetter(transport: Transport) -> Callable[[str], None]:
    """``transport``'s :meth:`SessionKeeper.forget_session`, or a no-op for
    a transport without that part (resolved once, when a node joins)."""
    if isinstance(transport, SessionKeeper):
        return transport.forget_session
    return _keeps_nothing


def is_node_fault(exc: BaseException) -> bool:
    """True for a fetch error whose egress node, not the target, failed
    (its typed ``node_fault``)."""
    return isinstance(exc, FetchError) and exc.node_fault


class ClassifiedError(TransportSignal, httpx.TransportError):
    """An httpx-level error that already knows its crawlmesh translation.

    Raised inside httpx transports (the pool, the API rewriter) where it is
    known whose fault a failure is; ``translate_httpx_error`` turns it into
    ``error_class(message, kind=kind, node_fault=node_fault)``. It stays an
    ``httpx.TransportError`` so httpx passes it through as its own.

    Args:
        message: the error text; it must hold no credentials.
        error_class: the crawlmesh class to raise.
        kind: the ``kind`` for stats and the errors file.
        node_fault: whether the egress node (not the target) failed.
    """

    def __init__(
        self, message: str, *, error_class: type[FetchError], kind: str, node_fault: bool
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.kind = kind
        self.node_fault = node_fault

    def to_fetch_error(self, request: Request) -> FetchError:
        """The crawlmesh error for ``request`` (the caller chains it)."""
        return self.error_class(
            str(self), request=request, kind=self.kind, node_fault=self.node_fault or None
        )
