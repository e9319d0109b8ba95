"""The crawlmesh exception tree.

Every error crawlmesh raises derives from :class:`CrawlmeshError`. The
public classes live here; the internal ones (in brackets: the module that
defines them) hang from the same tree, so ``except CrawlmeshError`` catches
whatever crawlmesh raises::

    CrawlmeshError
    ├── UsageError                  the user's mistake: one clear line, exit status 2
    │   ├── SettingsError           unknown key, wrong type, unreadable settings file
    │   └── SpiderLoadError         unknown module, no Spider, ambiguous Spider
    ├── BackendError                the backend (Redis) cannot be reached or refuses the crawl
    ├── HookError                   a pipeline's, hook's or extension's open() failed: no crawl
    ├── NotPersistable              [_state._records] a request the backend cannot store
    ├── NotTextResponse             css()/xpath() on a body that is not text, HTML or XML
    ├── DropItem                    raised by a pipeline: the item goes no further (a filter)
    ├── DropRequest                 raised by a fetch hook: the request ends as a filter
    ├── HookReplaced                [_hooks._fetch] a fetch hook replaced the request
    ├── HookFailed                  [_hooks._parse] a parse hook raised (its output is lost)
    ├── RequestError                a request that cannot be sent (carries ``request``)
    │   └── InvalidURL              malformed URL or unsupported scheme
    ├── FetchError                  the fetch failed (carries ``request``, ``node``, ``node_fault``)
    │   ├── FetchTimeout            connect, read or whole-request deadline passed
    │   ├── ConnectFailed           refused, unreachable, DNS failure, TLS failure
    │   ├── ConnectionBroken        reset or closed mid-response, protocol violation
    │   ├── RedirectError           too many redirects, a loop, a bad Location
    │   ├── HttpError               a non-2xx status the spider does not handle
    │   ├── ResponseTooLarge        body over ``max_response_size`` (raw or decoded)
    │   ├── DecodingFailed          a corrupt gzip/deflate/br body
    │   ├── BlockedAddress          the target resolves only to refused addresses (SSRF guard)
    │   ├── Banned                  a block page through a node (a ban rule matched)
    │   ├── CircuitOpen             no node's circuit breaker admits the request now
    │   │   └── NodesBusy           [_balancer._balancer] every node is at its rate, or pushed back
    │   ├── NodeFault               [_transport._node] the node itself failed
    │   │   └── NodePushback        [_transport._node] the node's own 429/503 and Retry-After
    │   └── Shutdown                [_engine._records] a fetch the shutdown deadline cut off
    ├── TransportSignal             inside the transports only: turned into a FetchError
    │   │                           (or a retry) before anything leaves them
    │   ├── ClassifiedError         [_transport._base] also an ``httpx.TransportError``
    │   ├── StaleConnection         [_transport._reader] a reused connection was closed
    │   ├── ProtocolError           [_transport._http11] bytes that are no HTTP/1.x response
    │   └── InvalidRequest          [_transport._http11] a request unsafe to write (CR, LF)
    └── NodeServiceError            inside the node service only: answered as an HTTP error
        ├── Refusal                 [_node._limits] a request the node will not take now
        └── Invalid                 [_node._validate] a scrape request the node refuses (400)

Third-party exceptions (httpx, trio, h11, zlib) are translated at the fetch
boundary, with the original chained as ``__cause__``. Each fetch error has a
``kind`` used as the key in stats and in the errors file; the kinds control
flow asks about are sets defined here (:data:`TIMEOUT_KINDS`), read through
typed properties (:attr:`FetchError.is_timeout`), never by matching strings.

A fetch error's facts are given when it is made (``request=``, ``node=``,
``node_fault=``); a layer that learns one later (the balancer learns the node
an attempt went through) takes a typed copy: :meth:`FetchError.with_node`,
:meth:`FetchError.with_request`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

if TYPE_CHECKING:
    from ._request import Request

__all__ = [
    "TIMEOUT_KINDS",
    "BackendError",
    "Banned",
    "BlockedAddress",
    "CircuitOpen",
    "ConnectFailed",
    "ConnectionBroken",
    "CrawlmeshError",
    "DecodingFailed",
    "FetchError",
    "FetchTimeout",
    "HttpError",
    "InvalidURL",
    "NodeServiceError",
    "NotTextResponse",
    "RedirectError",
    "RequestError",
    "ResponseTooLarge",
    "SettingsError",
    "SpiderLoadError",
    "TransportSignal",
    "UsageError",
]

TIMEOUT_KINDS: Final = frozenset(
    {
        "timeout",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "total_timeout",
        "api_connect_timeout",
        "proxy_connect_timeout",
    }
)
"""The kinds of a deadline that passed (:attr:`FetchError.is_timeout`)."""


class CrawlmeshError(Exception):
    """Base class of every crawlmesh error."""


class UsageError(CrawlmeshError):
    """A mistake of the user's: reported as one line, exit status 2."""


class SettingsError(UsageError):
    """Settings that cannot be read or do not validate."""


class SpiderLoadError(UsageError):
    """A spider module that cannot be imported or holds no usable Spider."""


class BackendError(CrawlmeshError):
    """The crawl's backend cannot be reached, or refuses this worker (one
    line, exit status 1)."""


class HookError(CrawlmeshError):
    """A pipeline, hook or extension could not open (its ``open()``
    raised): the crawl does not start (one line, exit status 1)."""


class TransportSignal(CrawlmeshError):
    """Raised and caught inside the transports (a stale connection, bytes
    that are no HTTP response, ...): turned into a :class:`FetchError`, or
    a retry, before anything leaves them."""


class DropItem(CrawlmeshError):
    """Raised by a pipeline's ``process_item`` to drop the item: counted in
    the stats' ``items_dropped`` under ``reason`` (the message), not an error.

    Args:
        reason: why, in a few words (the stats key; default: the class name).
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class DropRequest(CrawlmeshError):
    """Raised by a fetch hook to drop the request: it ends as a counted
    filter (``dropped_by_hook``), not an error."""


class NodeServiceError(CrawlmeshError):
    """Raised and caught inside the node service: answered as an HTTP
    error body, never seen by a crawl."""


class NotTextResponse(CrawlmeshError):
    """Selectors asked of a response whose body is not text, HTML or XML
    (an image, a PDF, a zip, JSON), as Scrapy's ``NotSupported``.

    Attributes:
        url: the response's URL.
        content_type: what the body is (see ``Response.content_type``).
    """

    def __init__(self, url: str, content_type: str) -> None:
        hint = "response.json()" if content_type.endswith(("/json", "+json")) else "response.body"
        super().__init__(
            f"{url} is {content_type}, not text, HTML or XML: it has no selectors (use {hint})"
        )
        self.url = url
        self.content_type = content_type


class RequestError(CrawlmeshError):
    """A request that cannot be sent at all."""

    kind: ClassVar[str] = "request_error"

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class InvalidURL(RequestError):
    """A malformed URL or one whose scheme crawlmesh does not fetch."""

    kind = "invalid_url"


class FetchError(CrawlmeshError):
    """A request was sent but no usable response came back.

    Args:
        message: what went wrong (it must hold no credentials).
        request: the request that failed.
        kind: refines the class's ``kind`` (``"read_timeout"``, ...).
        node: the egress node the attempt went through, if known.
        node_fault: the egress node, not the target, failed (the class's
            ``node_fault`` when not given).

    Attributes:
        kind: a short machine-readable name, the key in stats and in the
            errors file.
        node_fault: whether the egress node failed: the balancer counts the
            error against the node and tries another one.
    """

    kind: str = "fetch_error"
    node_fault: bool = False

    def __init__(
        self,
        message: str,
        *,
        request: Request | None = None,
        kind: str = "",
        node: str = "",
        node_fault: bool | None = None,
    ) -> None:
        super().__init__(message)
        self._request = request
        self._node = node
        if kind:
            self.kind = kind
        if node_fault is not None:
            self.node_fault = node_fault

    @property
    def request(self) -> Request | None:
        """The request that failed."""
        return self._request

    @property
    def node(self) -> str:
        """The egress node the attempt went through ("" if unknown)."""
        return self._node

    @property
    def is_timeout(self) -> bool:
        """Whether a deadline passed (a :class:`FetchTimeout`, or a kind in
        :data:`TIMEOUT_KINDS`)."""
        return isinstance(self, FetchTimeout) or self.kind in TIMEOUT_KINDS

    def with_node(self, node: str) -> Self:
        """This error as it happened through ``node`` (a copy)."""
        clone = self._copy()
        clone._node = node
        return clone

    def with_request(self, request: Request) -> Self:
        """This error as it belongs to ``request`` (a copy)."""
        clone = self._copy()
        clone._request = request
        return clone

    def _copy(self) -> Self:
        """A copy with the same class, fields, chain and traceback (without
        calling ``__init__``, whose signature subclasses change)."""
        clone = type(self).__new__(type(self), *self.args)
        clone.__dict__.update(self.__dict__)
        clone.__cause__ = self.__cause__
        clone.__context__ = self.__context__
        clone.__suppress_context__ = self.__suppress_context__
        return clone.with_traceback(self.__traceback__)


class FetchTimeout(FetchError):
    """A deadline passed: ``kind`` is connect_timeout, read_timeout or total_timeout."""

    kind = "timeout"


class ConnectFailed(FetchError):
    """The connection could not be opened."""

    kind = "connect_error"


class ConnectionBroken(FetchError):
    """The connection broke or the peer violated HTTP mid-exchange."""

    kind = "connection_error"


class RedirectError(FetchError):
    """Too many redirects, a redirect loop, or a redirect to a bad URL."""

    kind = "redirect_error"


class HttpError(FetchError):
    """A response whose status the spider does not handle (``response`` holds it)."""

    kind = "http_error"

    def __init__(self, message: str, *, request: Request | None = None, response: Any) -> None:
        super().__init__(message, request=request)
        self.response = response


class ResponseTooLarge(FetchError):
    """The body (raw, or after decompression) exceeded the size limit."""

    kind = "too_large"


class DecodingFailed(FetchError):
    """A compressed body could not be decoded."""

    kind = "decoding_error"


class BlockedAddress(FetchError):
    """The target resolves only to addresses the SSRF guard refuses
    (loopback, private, link-local, cloud metadata, ...)."""

    kind = "blocked_address"


class Banned(FetchError):
    """The response through a node looked like a block page (a ban rule
    matched its body or headers, not only its status)."""

    kind = "banned"


class CircuitOpen(FetchError):
    """Every node that could serve the request has its circuit breaker open
    (for the node, or for the node and this domain).

    The engine does not count it as an attempt: the request waits until a
    breaker half-opens, up to ``breaker.park_timeout``, and only then is it
    written to the errors file with this kind.
    """

    kind = "circuit_open"


def sole_leaf(error: BaseException) -> BaseException:
    """The one exception inside nested exception groups (as nurseries and
    task groups wrap them), or ``error`` itself if it holds more or is no
    group."""
    leaf = error
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    return error if isinstance(leaf, BaseExceptionGroup) else leaf


@contextmanager
def plain_errors() -> Iterator[None]:
    """Re-raise, bare, a crawlmesh error that nurseries or task groups
    wrapped in exception groups (anything else passes unchanged)."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = sole_leaf(group)
        if isinstance(leaf, CrawlmeshError):
            raise leaf from None
        raise
