"""Checks on a scrape request before the node acts on it.

Each check raises :class:`Invalid` with a message naming what is wrong and
the limit it broke; the service answers it as ``400 invalid_request``.
"""

from __future__ import annotations

import base64
import binascii

from .._exceptions import InvalidURL, NodeServiceError
from .._transport import ScrapeRequest
from .._util._url import split_http_url
from ._config import NodeConfig

__all__ = ["Invalid", "Validated", "validate"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_SESSION_ID = 200
# Seconds: the shortest timeout a request may ask for. Anything shorter could
# never be met, and would end as the node's fault (no slot in time).
MIN_TIMEOUT = 0.001


class Invalid(NodeServiceError):
    """A scrape request the node refuses (400 invalid_request)."""


class Validated:
    """A scrape request that passed, with its body decoded and limits applied."""

    __slots__ = ("body", "headers", "max_size", "scrape", "timeout")

    def __init__(
        self, scrape: ScrapeRequest, body: bytes, headers: dict[str, str], timeout: float,
        max_size: int,
    ) -> None:  # fmt: skip
        self.scrape = scrape
        self.body = body
        self.headers = headers
        self.timeout = timeout
        self.max_size = max_size


def validate(scrape: ScrapeRequest, config: NodeConfig) -> Validated:
    """Check ``scrape`` against ``config``'s limits.

    Raises:
        Invalid: the first rule the request breaks.
    """
    url = scrape.url
    if len(url) > config.max_url_length:
        raise Invalid(f"url is {len(url)} characters long (limit {config.max_url_length})")
    if any(c in url for c in "\r\n\t\x00 "):
        raise Invalid("url holds whitespace or control characters")
    try:
        split_http_url(url)  # scheme allow-list (http, https), host, port
    except InvalidURL as exc:
        raise Invalid(str(exc)) from None
    method = scrape.method.upper()
    if method not in _METHODS:
        raise Invalid(f"method {scrape.method!r} is not one of {', '.join(sorted(_METHODS))}")
    headers = _check_headers(scrape.headers, config)
    try:
        body = base64.b64decode(scrape.body, validate=True) if scrape.body else b""
    except (binascii.Error, ValueError):
        raise Invalid("body is not valid base64") from None
    if len(body) > config.max_body_size:
        raise Invalid(f"body is {len(body)} bytes (limit {config.max_body_size})")
    if not MIN_TIMEOUT <= scrape.timeout <= config.max_timeout:
        raise Invalid(
            f"timeout must be >= {MIN_TIMEOUT:g} and <= {config.max_timeout:g} s, "
            f"not {scrape.timeout}"
        )
    if scrape.max_size <= 0:
        raise Invalid(f"max_size must be > 0, not {scrape.max_size}")
    session = scrape.session_id
    if session is not None and not (
        0 < len(session) <= _MAX_SESSION_ID and session.isprintable() and session.isascii()
    ):
        raise Invalid(f"session_id must be 1-{_MAX_SESSION_ID} printable ASCII characters")
    return Validated(
        scrape, body, headers, scrape.timeout, min(scrape.max_size, config.max_response_size)
    )


def _check_headers(headers: dict[str, str], config: NodeConfig) -> dict[str, str]:
    if len(headers) > config.max_headers:
        raise Invalid(f"{len(headers)} headers (limit {config.max_headers})")
    for name, value in headers.items():
        if not name or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
            raise Invalid(f"header name {name!r} is not an HTTP token")
        if not name.isascii():
            raise Invalid(f"header name {name!r} is not ASCII")
        if any(c in value for c in "\r\n\x00"):
            # Header injection (response splitting, request smuggling).
            raise Invalid(f"header {name!r} holds CR, LF or NUL")
        if not value.isascii():
            raise Invalid(f"header {name!r} has a non-ASCII value (encode it, e.g. RFC 8187)")
        if value != value.strip(" \t"):
            raise Invalid(f"header {name!r} has whitespace around its value")
        if len(name) + len(value) > config.max_header_size:
            raise Invalid(f"header {name!r} is over {config.max_header_size} bytes")
        refusal = config.header_refusal(name)
        if refusal is not None:
            raise Invalid(refusal)
    return dict(headers)
