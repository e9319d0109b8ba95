"""The crawlmesh exception tree.

Every error crawlmesh raises derives from :class:`CrawlmeshError`::

    CrawlmeshError
    ├── UsageError                  the user's mistake: one clear line, exit status 2
    │   ├── SettingsError           unknown key, wrong type, unreadable settings file
    │   └── SpiderLoadError         unknown module, no Spider, ambiguous Spider
    ├── BackendError                the backend (Redis) cannot be reached or refuses the crawl
    ├── NotTextResponse             css()/xpath() on a body that is not text, HTML or XML
    ├── RequestError                a request that cannot be sent (carries ``request``)
    │   └── InvalidURL              malformed URL or unsupported scheme
    └── FetchError                  the fetch failed (carries ``request``)
        ├── FetchTimeout            connect, read or whole-request deadline passed
        ├── ConnectFailed           refused, unreachable, DNS failure, TLS failure
        ├── ConnectionBroken        reset or closed mid-response, protocol violation
        ├── RedirectError           too many redirects, a loop, a bad Location
        ├── HttpError               a non-2xx status the spider does not handle
        ├── ResponseTooLarge        body over ``max_response_size`` (raw or decoded)
        ├── DecodingFailed          a corrupt gzip/deflate/br body
        ├── BlockedAddress          the target resolves only to refused addresses (SSRF guard)
        └── CircuitOpen             no node's circuit breaker admits the request now

Third-party exceptions (httpx, trio, h11, zlib) are translated at the fetch
boundary, with the original chained as ``__cause__``. Each fetch error has a
``kind`` used as the key in stats and in the errors file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._request import Request

__all__ = [
    "BackendError",
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
    "NotTextResponse",
    "RedirectError",
    "RequestError",
    "ResponseTooLarge",
    "SettingsError",
    "SpiderLoadError",
    "UsageError",
]


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

    Attributes:
        request: the request that failed.
        kind: a short machine-readable name (``"read_timeout"``, ...).
    """

    kind: ClassVar[str] = "fetch_error"

    def __init__(self, message: str, *, request: Request | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.request = request
        self.node = ""  # the egress node the attempt went through, if known
        if kind:
            self.kind = kind  # type: ignore[misc]  # an instance may refine the class kind


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
