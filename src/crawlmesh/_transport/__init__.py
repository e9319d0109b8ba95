"""Transports: how a request reaches its target, one per node kind.

Every node kind implements one small interface, :class:`Transport`: an
``async fetch(request, options)`` returning a :class:`~crawlmesh.Response`,
and ``aclose()``. Failures are crawlmesh's errors; a failure of the node
itself (not of the target) is a :class:`ClassifiedError` marked
``node_fault`` (read with :func:`is_node_fault`), so the balancer can try
another node.

* :class:`DirectTransport`: fetch from this process (httpx over the lean
  HTTP/1.1 pool, :class:`H11Pool`).
* :class:`ProxyTransport`: through an HTTP forward proxy.
* :class:`ApiTransport`: through a third-party scraping API.
* :class:`NodeTransport`: through a ``crawlmesh node`` service, speaking
  the wire protocol of ``_nodeproto`` (:class:`ScrapeRequest`,
  :class:`ScrapeResult`, :class:`ErrorBody`, :class:`Health`); a node's own
  refusal is a :class:`NodePushback`.
* :class:`Deadlines`: each attempt's deadlines by node kind and domain
  (:class:`TimeoutRule`).
* :class:`AddressGuard`: the SSRF guard a node service fetches behind
  (loaded on first use).

Below the resilience layer and everything above it: this package imports
only crawlmesh's records, exceptions and utilities, and from the shaping
its domain globs and Retry-After parser.
The framing (``_http11``), connections (``_conn``, ``_reader``, ``_tunnel``)
and decoders (``_decoding``) are the pool's parts and stay private to it.
"""

import typing as _typing

from .._util._lazy import lazy_exports as _lazy_exports
from ._api import ApiTransport
from ._base import (
    ClassifiedError,
    FetchOptions,
    SessionKeeper,
    Transport,
    is_node_fault,
    session_forgetter,
)
from ._deadlines import Deadlines, TimeoutRule
from ._direct import MAX_COOKIES_PER_JAR, DirectTransport
from ._node import NodeFault, NodePushback, NodeTransport, is_node_pushback
from ._nodeproto import (
    TARGET_ERRORS,
    ErrorBody,
    ErrorDetail,
    Health,
    ScrapeRequest,
    ScrapeResult,
    target_failure,
)
from ._pool import H11Pool
from ._proxy import ProxyTransport

if _typing.TYPE_CHECKING:
    from ._guard import METADATA_ADDRESSES, AddressGuard

__all__ = [
    "MAX_COOKIES_PER_JAR",
    "METADATA_ADDRESSES",
    "TARGET_ERRORS",
    "AddressGuard",
    "ApiTransport",
    "ClassifiedError",
    "Deadlines",
    "DirectTransport",
    "ErrorBody",
    "ErrorDetail",
    "FetchOptions",
    "H11Pool",
    "Health",
    "NodeFault",
    "NodePushback",
    "NodeTransport",
    "ProxyTransport",
    "ScrapeRequest",
    "ScrapeResult",
    "SessionKeeper",
    "TimeoutRule",
    "Transport",
    "is_node_fault",
    "is_node_pushback",
    "session_forgetter",
    "target_failure",
]

# Only the node service fetches behind the SSRF guard: a crawl does not pay
# the guard's address tables (a few ms of start-up) for it.
_LAZY = frozenset({"METADATA_ADDRESSES", "AddressGuard"})


__getattr__, __dir__ = _lazy_exports(__name__, "._guard", _LAZY, globals())
