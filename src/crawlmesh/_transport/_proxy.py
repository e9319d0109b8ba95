"""The ``proxy`` transport: fetch through an HTTP forward proxy.

A :class:`DirectTransport` over an :class:`H11Pool` configured with the
proxy, so redirects, size limits, decoding and cookies behave exactly as for
``direct`` nodes. What this layer adds is the proxy's part of the error
contract:

* the proxy's own failures come out with ``node_fault = True`` (read it with
  :func:`is_node_fault`) and a kind of their own: ``proxy_connect_error``
  (refused or unreachable), ``proxy_connect_timeout``, ``proxy_auth`` (407),
  ``proxy_error`` (a refused CONNECT, or an answer the proxy marks as its own
  with an RFC 9209 ``Proxy-Status: ...; error=...`` header);
* the target's failures, as reported by the proxy (``Proxy-Status`` error
  types such as ``connection_refused`` or ``dns_error``), come out as the
  direct transport would raise them (``connect_error``, ...), not a node
  fault;
* any other answer to a plain-http request, 5xx included, is the target's
  response: a proxy that does not mark its own errors cannot be told apart.

The credentials never leave :class:`H11Pool` except in the
``Proxy-Authorization`` header sent to the proxy; every error leaving
:meth:`ProxyTransport.fetch` is redacted once more on the way out.
"""

from __future__ import annotations

import ssl

import structlog

from .._exceptions import FetchError, SettingsError
from .._request import Request
from .._response import Response
from .._util._log import debug_enabled, request_keys
from .._util._redact import redact_exception, redact_url
from ._base import FetchOptions, is_node_fault
from ._direct import DirectTransport
from ._pool import H11Pool

__all__ = ["ProxyTransport"]

log = structlog.get_logger("crawlmesh.transport")


class ProxyTransport:
    """Fetches through an HTTP forward proxy (the ``proxy`` node kind).

    Args:
        url: the proxy, ``http://[user:pass@]host:port`` (percent-encode
            ``@``, ``:`` and ``/`` inside the credentials).
        cookies: keep cookies across requests (one jar for the crawl).
        ssl_context: verifies https targets reached through the tunnel
            (a default verifying context if None).
        max_idle_per_origin: idle connections kept per tunnelled https
            origin, and for all http targets together.
        name: the node's name, for log lines.

    Raises:
        SettingsError: ``url`` is not an http:// URL with a host (the
            message shows it with the credentials masked).
    """

    def __init__(
        self,
        url: str,
        *,
        cookies: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = 128,
        name: str = "",
    ) -> None:
        self._name = name
        self._redacted = redact_url(url)
        try:
            pool = H11Pool(
                proxy=url, ssl_context=ssl_context, max_idle_per_origin=max_idle_per_origin
            )
        except ValueError as exc:
            raise SettingsError(f"proxy node: {exc}") from None
        self._secrets = pool.proxy_secrets
        self._direct = DirectTransport(cookies=cookies, transport=pool)

    def __repr__(self) -> str:
        return f"<ProxyTransport {self._redacted}>"

    @property
    def proxy_url(self) -> str:
        """The proxy's URL with the credentials masked (safe to log)."""
        return self._redacted

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        """Fetch ``request`` through the proxy; see :class:`Transport`.

        Raises:
            FetchError: as :meth:`DirectTransport.fetch`, plus the proxy's
                own failures, marked ``node_fault`` (see the module notes).
        """
        try:
            return await self._direct.fetch(request, options)
        except FetchError as exc:
            redact_exception(exc, self._secrets)
            if is_node_fault(exc) and debug_enabled():
                log.debug(
                    "proxy failed",
                    **request_keys(request.url, None, self._name, options.attempt),
                    proxy=self._redacted,
                    kind=exc.kind,
                    reason=str(exc),
                )
            raise

    def forget_session(self, session: str) -> None:
        """Drop a session's cookie jar (its next request starts afresh)."""
        self._direct.forget_session(session)

    async def aclose(self) -> None:
        """Close the pooled connections to the proxy and through it."""
        await self._direct.aclose()
