"""A lean HTTP/1.1 connection pool for httpx on Trio.

httpcore's pool spends most of its CPU on bookkeeping at high concurrency
under Trio (encode/httpcore#1035); this one keeps a LIFO stack of idle
connections per origin and nothing else. It plugs in under ``httpx`` through
:class:`httpx.AsyncBaseTransport`, so requests and responses stay httpx's.

Bodies are streamed raw (``Content-Encoding`` untouched): crawlmesh decodes
them itself, under a size limit.

With ``proxy=`` every request goes through an HTTP forward proxy: http
targets in absolute form (``GET http://host/path``) on connections pooled per
proxy, https targets through a ``CONNECT`` tunnel and TLS inside it, pooled
per target origin. Failures the proxy owns are raised as
:class:`ClassifiedError`, which the fetch boundary turns into a crawlmesh
error marked ``node_fault`` (see :func:`mark_node_fault`).
"""

from __future__ import annotations

import base64
import os
import re
import select
import ssl
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote, urlsplit

import h11
import httpx
import trio

from .._exceptions import ConnectFailed, ConnectionBroken, FetchError, FetchTimeout
from .._request import Request
from .._util._redact import redact_url, register_secret, secret_forms
from ._base import is_node_fault, mark_node_fault
from ._http11 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    MAX_HEAD,
    ChunkedDecoder,
    Head,
    InvalidRequest,
    ProtocolError,
    parse_head,
    request_bytes,
)

__all__ = ["ClassifiedError", "H11Pool", "is_node_fault", "mark_node_fault"]


_READ_SIZE = 65536
# A peer that drips its response (a byte per packet) would cost the event
# loop one wake-up per byte: after this many reads in a row of fewer than
# _SMALL_READ bytes, each read waits _DRIP_PAUSE first, so that what has come
# by then is taken in one read. A sender that is only slow, not dripping, is
# unaffected: its reads are large again after the first pause.
_DRIP_READS = 8
_SMALL_READ = 512
_DRIP_PAUSE = 0.01
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_Origin = tuple[bytes, str, int]
# The pool key of connections to the proxy that carry absolute-form requests
# (every http target shares them); tunnels are keyed by their target origin.
_FORWARD = b"proxy"


class ClassifiedError(httpx.TransportError):
    """An httpx-level error that already knows its crawlmesh translation.

    Raised inside httpx transports (the pool, the API rewriter) where it is
    known whose fault a failure is; ``translate_httpx_error`` turns it into
    ``error_class(message, kind=kind)``, marked when ``node_fault``.

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
        error = self.error_class(str(self), request=request, kind=self.kind)
        return mark_node_fault(error) if self.node_fault else error


# RFC 9209 Proxy-Status error types that say the proxy could not get a
# response from the target: the target's failure, as if fetched directly.
# Every other error type (and a CONNECT refused without one) is the proxy's.
_TARGET_ERRORS: dict[str, tuple[type[FetchError], str]] = {
    "dns_error": (ConnectFailed, "connect_error"),
    "dns_timeout": (FetchTimeout, "connect_timeout"),
    "destination_not_found": (ConnectFailed, "connect_error"),
    "destination_unavailable": (ConnectFailed, "connect_error"),
    "destination_ip_unroutable": (ConnectFailed, "connect_error"),
    "connection_refused": (ConnectFailed, "connect_error"),
    "connection_timeout": (FetchTimeout, "connect_timeout"),
    "connection_terminated": (ConnectionBroken, "connection_error"),
    "connection_read_timeout": (FetchTimeout, "read_timeout"),
    "http_response_timeout": (FetchTimeout, "read_timeout"),
    "http_response_incomplete": (ConnectionBroken, "connection_error"),
    "http_protocol_error": (ConnectionBroken, "connection_error"),
    "tls_protocol_error": (ConnectFailed, "connect_error"),
    "tls_certificate_error": (ConnectFailed, "connect_error"),
    "tls_alert_received": (ConnectFailed, "connect_error"),
}
_PROXY_STATUS_ERROR = re.compile(r";\s*error\s*=\s*([A-Za-z0-9_.-]+)")


class _Proxy:
    """A parsed proxy URL; the credentials live only in ``auth``."""

    __slots__ = ("auth", "host", "port", "redacted", "secrets")

    def __init__(self, url: str) -> None:
        self.redacted = redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            # The parser's own message may quote the URL: ours is redacted.
            raise ValueError(f"invalid proxy URL {self.redacted!r}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"invalid proxy URL {self.redacted!r}: expected http://[user:pass@]host:port"
            )
        self.host = parts.hostname
        self.port = port or 80
        self.auth: bytes | None = None
        self.secrets: list[str] = []
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.auth = f"Basic {token}".encode("ascii")
            self.secrets = [token, *secret_forms(user), *secret_forms(password)]
            self.secrets += [parts.username, parts.password or ""]
            for secret in (token, user, password):
                register_secret(secret)  # masked in every log line too

    def refusal(
        self,
        status: int,
        reason: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        tunnel: str | None,
    ) -> ClassifiedError | None:
        """The error for a response the proxy gave instead of the target's.

        None when the response is (as far as can be told) the target's: for
        absolute-form requests only a 407 or a ``Proxy-Status`` with an
        ``error`` parameter is the proxy's own; a tunnel is the proxy's
        until it answers 2xx.
        """
        what = f"{status} {reason.decode('latin-1')}".strip()
        where = f"proxy {self.host}:{self.port}"
        if status == 407:
            detail = "refused the credentials" if self.auth else "requires credentials"
            if tunnel is not None:
                detail += f" for CONNECT {tunnel}"
            return ClassifiedError(
                f"{where} {detail} ({what})",
                error_class=FetchError,
                kind="proxy_auth",
                node_fault=True,
            )
        error_type = _proxy_status_error(headers)
        if error_type in _TARGET_ERRORS:
            error_class, kind = _TARGET_ERRORS[error_type]
            return ClassifiedError(
                f"{where} could not reach the target: {what} ({error_type})",
                error_class=error_class,
                kind=kind,
                node_fault=False,
            )
        if error_type is None and tunnel is None:
            return None
        if tunnel is not None:
            message = f"{where} refused CONNECT {tunnel}: {what}"
        else:
            message = f"{where} failed: {what}"
        if error_type:
            message += f" ({error_type})"
        return ClassifiedError(message, error_class=FetchError, kind="proxy_error", node_fault=True)


def _proxy_status_error(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"proxy-status":
            match = _PROXY_STATUS_ERROR.search(value.decode("latin-1"))
            if match:
                return match.group(1).lower()
    return None


class _Conn:
    __slots__ = ("buf", "fd", "forward", "small_reads", "socket_fd", "stream")

    def __init__(self, stream: trio.abc.Stream, *, forward: bool = False) -> None:
        self.stream = stream
        # A plain TCP connection is read and written through its descriptor
        # (see _receive and _send_all); TLS goes through the stream.
        self.fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None
        # The socket under TLS, polled before an idle connection is reused.
        self.socket_fd = self.fd
        if isinstance(stream, trio.SSLStream) and isinstance(
            stream.transport_stream, trio.SocketStream
        ):
            self.socket_fd = stream.transport_stream.socket.fileno()
        # Bytes received and not yet consumed (the rest of a head's packet).
        self.buf = bytearray()
        # True: a connection to the proxy that sends absolute-form requests.
        self.forward = forward
        # Reads in a row that returned fewer than _SMALL_READ bytes.
        self.small_reads = 0


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
        self._open = connect or _open_tcp
        self._max_idle = max_idle_per_origin
        self._idle: dict[_Origin, list[_Conn]] = {}
        self._closed = False
        self._proxy = _Proxy(proxy) if proxy is not None else None

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

    async def _connect(self, origin: _Origin, connect_timeout: float) -> _Conn:
        scheme, host, port = origin
        proxy = self._proxy
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(connect_timeout) as scope:
            if proxy is None:
                stream = await self._open(host, port)
            else:
                try:
                    stream = await _open_tcp(proxy.host, proxy.port)
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
                        await self._tunnel(stream, proxy, host, port)
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
        return _Conn(stream, forward=origin[0] == _FORWARD)

    async def _tunnel(self, stream: trio.abc.Stream, proxy: _Proxy, host: str, port: int) -> None:
        """Ask the proxy for a tunnel to ``host:port``; raises unless it says 2xx."""
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers = [(b"Host", authority.encode())]
        if proxy.auth is not None:
            headers.append((b"Proxy-Authorization", proxy.auth))
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        data = conn.send(h11.Request(method="CONNECT", target=authority, headers=headers)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        try:
            await stream.send_all(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(_READ_SIZE)))
                elif isinstance(event, h11.Response):
                    break
                elif not isinstance(event, h11.InformationalResponse):
                    raise h11.RemoteProtocolError("no response to CONNECT")
        except (h11.RemoteProtocolError, trio.BrokenResourceError, OSError) as exc:
            raise ClassifiedError(
                f"proxy {proxy.host}:{proxy.port} broke off CONNECT {authority}: "
                f"{str(exc) or type(exc).__name__}",
                error_class=ConnectionBroken,
                kind="proxy_error",
                node_fault=True,
            ) from exc
        if 200 <= event.status_code < 300:
            if conn.trailing_data[0]:
                # Bytes before our ClientHello: not a clean tunnel.
                raise ClassifiedError(
                    f"proxy {proxy.host}:{proxy.port} sent data into a new tunnel",
                    error_class=ConnectionBroken,
                    kind="proxy_error",
                    node_fault=True,
                )
            return
        error = proxy.refusal(event.status_code, event.reason, event.headers, tunnel=authority)
        assert error is not None  # a tunnel is always refused by the proxy itself
        raise error

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
    ) -> tuple[Head, _Body]:
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
            origin: _Origin = (_FORWARD, proxy.host, proxy.port)
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
            if _readable_while_idle(conn):
                # Closed, or bytes nobody asked for: a response read from it
                # could be the answer to another request.
                await trio.aclose_forcefully(conn.stream)
                continue
            try:
                return await self._exchange(
                    conn, origin, data, head_request, read_timeout, write_timeout, fresh=False
                )
            except _StaleConnection:
                # The server closed a kept-alive connection: try the next one.
                continue
        conn = await self._connect(origin, connect_timeout)
        try:
            return await self._exchange(
                conn, origin, data, head_request, read_timeout, write_timeout, fresh=True
            )
        except _StaleConnection as exc:
            raise httpx.RemoteProtocolError("server closed the connection") from exc

    async def _exchange(
        self,
        conn: _Conn,
        origin: _Origin,
        data: bytes,
        head_request: bool,
        read_timeout: float,
        write_timeout: float,
        *,
        fresh: bool,
    ) -> tuple[Head, _Body]:
        conn.small_reads = 0
        try:
            try:
                await _send_all(conn, data, write_timeout)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _StaleConnection from exc
            head = await self._read_head(conn, head_request, read_timeout, fresh=fresh)
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise
        if conn.forward:
            assert self._proxy is not None
            error = self._proxy.refusal(head.status, head.reason, head.headers, tunnel=None)
            if error is not None:
                await trio.aclose_forcefully(conn.stream)
                raise error
        return head, _Body(self, conn, origin, head, read_timeout)

    async def _read_head(
        self, conn: _Conn, head_request: bool, read_timeout: float, *, fresh: bool
    ) -> Head:
        buf = conn.buf
        scanned = 0  # bytes of buf searched for the head's end
        while True:
            if buf:
                try:
                    parsed = parse_head(buf, head_request=head_request, scanned=scanned)
                except ProtocolError as exc:
                    if not fresh:
                        raise _StaleConnection from exc
                    raise httpx.RemoteProtocolError(f"invalid HTTP response: {exc}") from exc
                if parsed is not None:
                    head, used = parsed
                    del buf[:used]
                    scanned = 0
                    if head.status >= 200:
                        return head
                    if head.status == 101:
                        raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols")
                    continue  # an informational response: the real one follows
                scanned = len(buf)
                if len(buf) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("the response head is larger than 64 KiB")
            try:
                data = await _receive(conn, read_timeout, waiting=not buf)
            except httpx.ReadError:
                if not fresh:
                    raise _StaleConnection from None
                raise
            if not data:
                if not fresh:
                    raise _StaleConnection
                raise httpx.RemoteProtocolError(
                    "server closed the connection in the response head"
                    if buf
                    else "server closed the connection without a response"
                )
            buf += data

    def _release(self, conn: _Conn, origin: _Origin) -> bool:
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


async def _open_tcp(host: str, port: int) -> trio.abc.Stream:
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc


class _StaleConnection(Exception):
    """A reused connection turned out to be closed before any response."""


class _Body(httpx.AsyncByteStream):
    __slots__ = (
        "_chunks",
        "_closed",
        "_conn",
        "_done",
        "_framing",
        "_left",
        "_origin",
        "_pool",
        "_reusable",
        "_timeout",
    )

    def __init__(
        self, pool: H11Pool, conn: _Conn, origin: _Origin, head: Head, timeout: float
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._origin = origin
        self._timeout = timeout
        self._framing = framing = head.framing
        self._left = head.length
        self._chunks = ChunkedDecoder() if framing == BODY_CHUNKED else None
        self._done = framing == BODY_NONE or (framing == BODY_LENGTH and not head.length)
        self._reusable = head.keep_alive
        self._closed = False

    # An iterator object rather than an async generator: nothing for the
    # garbage collector to finalise when a body is abandoned half-read.
    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        buf = self._conn.buf
        while not self._done:
            if buf:
                data = self._take(buf)
                if data:
                    return data
                if self._done:  # the end of a chunked body
                    break
            # (What is buffered, if anything, is part of a chunk line.)
            data = await _receive(self._conn, self._timeout)
            if not data:
                self._reusable = False
                if self._framing == BODY_UNTIL_CLOSE:
                    self._done = True
                    break
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            buf += data
        raise StopAsyncIteration

    def _take(self, buf: bytearray) -> bytes:
        """The body bytes at the front of ``buf``, removed from it."""
        framing = self._framing
        if framing == BODY_LENGTH:
            if len(buf) <= self._left:
                data = bytes(buf)
                buf.clear()
            else:
                data = bytes(buf[: self._left])
                del buf[: self._left]
            self._left -= len(data)
            self._done = not self._left
            return data
        if framing == BODY_CHUNKED:
            assert self._chunks is not None
            try:
                data = self._chunks.decode(buf)
            except ProtocolError as exc:
                self._reusable = False
                raise httpx.RemoteProtocolError(f"invalid chunked body: {exc}") from exc
            self._done = self._chunks.done
            return data
        data = bytes(buf)
        buf.clear()
        return data

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        # A redirect's body is rarely read, but it is usually tiny and came
        # with the head: finishing it without I/O keeps the connection (or
        # tunnel) for the request that follows the redirect.
        try:
            while not self._done and conn.buf and self._framing != BODY_UNTIL_CLOSE:
                before = len(conn.buf)
                self._take(conn.buf)
                if len(conn.buf) == before:
                    break
        except httpx.RemoteProtocolError:
            self._done = False
        reuse = self._done and self._reusable and not conn.buf
        if not (reuse and self._pool._release(conn, self._origin)):
            await trio.aclose_forcefully(conn.stream)


async def _send_all(conn: _Conn, data: bytes, write_timeout: float) -> None:
    """Write ``data`` to ``conn``.

    On a plain TCP connection a request usually fits the socket's buffer:
    one ``os.write``, with none of a stream's locking and checkpoints.

    Raises:
        trio.BrokenResourceError: the connection is gone.
        httpx.WriteTimeout: the peer took nothing for ``write_timeout``.
    """
    fd = conn.fd
    view = memoryview(data)
    if fd is not None:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            pass
        except OSError as exc:
            raise trio.BrokenResourceError(f"connection broken: {exc}") from exc
        if not view:
            return
    with trio.move_on_after(write_timeout) as scope:
        if fd is None:
            await conn.stream.send_all(data)
            return
        while view:
            await trio.lowlevel.wait_writable(fd)
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"connection broken: {exc}") from exc
    if scope.cancelled_caught:
        raise httpx.WriteTimeout("sending the request timed out")


def _read_ready(fd: int) -> bytes | None:
    """What the non-blocking socket ``fd`` holds (empty at its end), or None
    if nothing yet.

    Raises:
        httpx.ReadError: the connection is broken.
    """
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise httpx.ReadError(f"connection broken: {exc}") from exc


def _readable_while_idle(conn: _Conn) -> bool:
    """Whether an idle connection has something to read: its end, or bytes
    that answer no request of ours (either way it must not be reused).

    One non-blocking system call: a read on a plain TCP connection (what it
    takes, if anything, is thrown away with the connection), a poll of the
    socket under TLS. (Under TLS, records already taken off the socket into
    the TLS layer's buffer but not decrypted are not seen.)
    """
    fd = conn.fd
    if fd is not None:
        try:
            return _read_ready(fd) is not None
        except httpx.ReadError:
            return True
    stream = conn.stream
    if isinstance(stream, trio.SSLStream) and stream.pending():
        return True
    if conn.socket_fd is None:
        return False
    poller = select.poll()
    poller.register(conn.socket_fd, select.POLLIN)
    return bool(poller.poll(0))


async def _receive(conn: _Conn, read_timeout: float, *, waiting: bool = False) -> bytes:
    """The next bytes from ``conn`` (empty at the end of the stream); after
    _DRIP_READS small reads in a row, a pause of _DRIP_PAUSE first."""
    if conn.small_reads >= _DRIP_READS:
        await trio.sleep(_DRIP_PAUSE)
    data = await _receive_some(conn, read_timeout, waiting)
    conn.small_reads = conn.small_reads + 1 if 0 < len(data) < _SMALL_READ else 0
    return data


async def _receive_some(conn: _Conn, read_timeout: float, waiting: bool) -> bytes:
    """The next bytes from ``conn`` (empty at the end of the stream).

    On a plain TCP connection: what the socket holds if it holds anything
    (the rest of a body often does), else one wait until it is readable.
    ``waiting``: nothing can have arrived yet (a request was just sent), so
    wait first rather than spend a system call to learn it.
    """
    fd = conn.fd
    if fd is not None:
        if not waiting:
            data = _read_ready(fd)
            if data is not None:
                return data
        with trio.move_on_after(read_timeout):
            while True:
                await trio.lowlevel.wait_readable(fd)
                data = _read_ready(fd)
                if data is not None:
                    return data
        raise httpx.ReadTimeout(f"no data for {read_timeout:g} s")
    with trio.move_on_after(read_timeout) as scope:
        try:
            return bytes(await conn.stream.receive_some(_READ_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpx.ReadError(f"connection broken: {exc}") from exc
    assert scope.cancelled_caught
    raise httpx.ReadTimeout(f"no data for {read_timeout:g} s")
