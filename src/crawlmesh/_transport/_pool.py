"""A lean HTTP/1.1 connection pool for httpx on Trio.

httpcore's pool spends most of its CPU on bookkeeping at high concurrency
under Trio (encode/httpcore#1035); this one keeps a LIFO stack of idle
connections per origin and nothing else. It plugs in under ``httpx`` through
:class:`httpx.AsyncBaseTransport`, so requests and responses stay httpx's.

The parts: :mod:`._conn` (a connection and its socket I/O), :mod:`._tunnel`
(the proxy's URL, tunnels and refusals), :mod:`._reader` (the response head
and the body stream); this module keeps the idle connections and sends.

With ``proxy=`` every request goes through an HTTP forward proxy: http
targets in absolute form (``GET http://host/path``) on connections pooled per
proxy, https targets through a ``CONNECT`` tunnel and TLS inside it, pooled
per target origin. Failures the proxy owns are raised as
:class:`ClassifiedError`, which the fetch boundary turns into a crawlmesh
error with ``node_fault`` set (see :func:`~._base.is_node_fault`).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import httpx
import trio

from .._exceptions import ConnectFailed, FetchError, FetchTimeout
from ._base import ClassifiedError
from ._conn import Conn, open_tcp, readable_while_idle, send_all
from ._http11 import Head, InvalidRequest, request_bytes
from ._reader import Body, Origin, StaleConnection, read_head
from ._tunnel import ProxyURL, open_tunnel

__all__ = ["H11Pool"]


_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# The pool key of connections to the proxy that carry absolute-form requests
# (every http target shares them); tunnels are keyed by their target origin.
_FORWARD = b"proxy"


def _timeout(request: httpx.Request, phase: str) -> float:
    value = request.extensions.get("timeout", {}).get(phase)
    return float("inf") if value is None else float(value)


class H11Pool(httpx.AsyncBaseTransport):
    """HTTP/1.1 over Trio with keep-alive and per-phase timeouts.

    Args:
        ssl_context: used for https; a default verifying context if None.
        max_idle_per_origin: idle connections kept per origin (through a
            proxy: per tunnelled https origin, and for all http targets
            together on the proxy).
        proxy: an HTTP forward proxy, ``http://[user:pass@]host:port``, to
            send every request through; credentials go only to the proxy,
            as ``Proxy-Authorization: Basic``.
        connect: opens the TCP connection to a target (host, port); an
            :class:`~crawlmesh._transport._guard.AddressGuard`'s
            ``open_stream`` checks each address first. Not used for the
            connection to a proxy.

    Raises:
        ValueError: ``proxy`` is not an http:// URL with a host (the
            message shows it with its credentials masked).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = 128,
        proxy: str | None = None,
        connect: Callable[[str, int], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._open = connect or open_tcp
        self._max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[Conn]] = {}
        self._closed = False
        self._proxy = ProxyURL(proxy) if proxy is not None else None

    def __repr__(self) -> str:
        proxy = f" proxy={self._proxy.redacted}" if self._proxy else ""
        return f"<H11Pool{proxy}>"

    @property
    def proxy_secrets(self) -> list[str]:
        """The proxy's credentials in every spelling, to redact from text."""
        return list(self._proxy.secrets) if self._proxy else []

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_context = ctx
        return self._ssl_context

    async def _connect(self, origin: Origin, connect_timeout: float) -> Conn:
        scheme, host, port = origin
        proxy = self._proxy
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(connect_timeout) as scope:
            if proxy is None:
                stream = await self._open(host, port)
            else:
                try:
                    stream = await open_tcp(proxy.host, proxy.port)
                except httpx.ConnectError as exc:
                    raise ClassifiedError(
                        f"cannot connect to the proxy: {exc}",
                        error_class=ConnectFailed,
                        kind="proxy_connect_error",
                        node_fault=True,
                    ) from exc
            try:
                if scheme == b"https":
                    if proxy is not None:
                        await open_tunnel(stream, proxy, host, port)
                    tls = trio.SSLStream(
                        stream, self._ssl(), server_hostname=host, https_compatible=True
                    )
                    await tls.do_handshake()
                    stream = tls
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                await trio.aclose_forcefully(stream)
                # trio wraps a failed handshake, whose SSLError says why.
                detail = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
                raise httpx.ConnectError(f"cannot connect to {host}:{port}: {detail}") from exc
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        if scope.cancelled_caught:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            elif proxy is not None:
                # The proxy did not even accept the connection: its fault.
                raise ClassifiedError(
                    f"connecting to the proxy {proxy.host}:{proxy.port} timed out",
                    error_class=FetchTimeout,
                    kind="proxy_connect_timeout",
                    node_fault=True,
                )
            # A tunnel or TLS handshake that stalls is charged to the target,
            # as a direct connection would be: a proxy that cannot reach a
            # target usually stalls the same way.
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out")
        assert stream is not None
        return Conn(stream, forward=origin[0] == _FORWARD)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        head, body = await self.send(
            request.method,
            url.raw_scheme,
            url.host,
            url.port or _DEFAULT_PORTS.get(url.raw_scheme, 80),
            url.netloc,
            url.raw_path,
            request.headers.raw,
            request.content,
            connect_timeout=_timeout(request, "connect"),
            read_timeout=_timeout(request, "read"),
            write_timeout=_timeout(request, "write"),
        )
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
            request=request,
        )

    async def send(
        self,
        method: str,
        scheme: bytes,
        host: str,
        port: int,
        authority: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        write_timeout: float,
    ) -> tuple[Head, Body]:
        """Send one request and read its response head.

        The lean path under :meth:`handle_async_request`, for callers that
        have the URL's parts already. ``headers`` must hold Host (and
        Content-Length with a body); the proxy's credentials are added here.

        Returns:
            The head, and the body to read (and close: that returns the
            connection to the pool).
        """
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        proxy = self._proxy
        if proxy is not None and scheme == b"http":
            origin: Origin = (_FORWARD, proxy.host, proxy.port)
            # Absolute form, and the credentials for the proxy's eyes only
            # (it strips Proxy-Authorization before forwarding).
            target = scheme + b"://" + authority + path
            if proxy.auth is not None:
                headers = [*headers, (b"Proxy-Authorization", proxy.auth)]
        else:
            origin = (scheme, host, port)
            target = path
        try:
            data = request_bytes(method.encode("ascii", "replace"), target, headers, body)
        except InvalidRequest as exc:
            # The request's fault, not the connection's or the target's.
            raise ClassifiedError(
                f"the request cannot be sent: {exc}",
                error_class=FetchError,
                kind="invalid_request",
                node_fault=False,
            ) from exc
        head_request = method == "HEAD"
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if readable_while_idle(conn):
                # Closed, or bytes nobody asked for: a response read from it
                # could be the answer to another request.
                await trio.aclose_forcefully(conn.stream)
                continue
            try:
                return await self._exchange(
                    conn, origin, data, head_request, read_timeout, write_timeout, fresh=False
                )
            except StaleConnection:
                # The server closed a kept-alive connection: try the next one.
                continue
        conn = await self._connect(origin, connect_timeout)
        try:
            return await self._exchange(
                conn, origin, data, head_request, read_timeout, write_timeout, fresh=True
            )
        except StaleConnection as exc:
            raise httpx.RemoteProtocolError("server closed the connection") from exc

    async def _exchange(
        self,
        conn: Conn,
        origin: Origin,
        data: bytes,
        head_request: bool,
        read_timeout: float,
        write_timeout: float,
        *,
        fresh: bool,
    ) -> tuple[Head, Body]:
        conn.small_reads = 0
        try:
            try:
                await send_all(conn, data, write_timeout)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise StaleConnection from exc
            head = await read_head(conn, head_request, read_timeout, fresh=fresh)
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise
        if conn.forward:
            assert self._proxy is not None
            error = self._proxy.refusal(head.status, head.reason, head.headers, tunnel=None)
            if error is not None:
                await trio.aclose_forcefully(conn.stream)
                raise error
        return head, Body(self, conn, origin, head, read_timeout)

    def release(self, conn: Conn, origin: Origin) -> bool:
        """Keep ``conn`` as idle for ``origin`` (a body read to its end);
        False if the pool is closed or full."""
        if self._closed:
            return False
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            return False
        idle.append(conn)
        return True

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await trio.aclose_forcefully(conn.stream)
