"""A lean HTTP/1.1 connection pool for httpx on Trio.

httpcore's pool spends most of its CPU on bookkeeping at high concurrency
under Trio (encode/httpcore#1035); this one keeps a LIFO stack of idle
connections per origin and nothing else. It plugs in under ``httpx`` through
:class:`httpx.AsyncBaseTransport`, so requests and responses stay httpx's.

Bodies are streamed raw (``Content-Encoding`` untouched): crawlmesh decodes
them itself, under a size limit.
"""

from __future__ import annotations

import ssl
from typing import Any

import h11
import httpx
import trio

__all__ = ["H11Pool"]

_READ_SIZE = 65536
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_Origin = tuple[bytes, str, int]


class _Conn:
    __slots__ = ("h11", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)


def _timeout(request: httpx.Request, phase: str) -> float:
    value = request.extensions.get("timeout", {}).get(phase)
    return float("inf") if value is None else float(value)


class H11Pool(httpx.AsyncBaseTransport):
    """HTTP/1.1 over Trio with keep-alive and per-phase timeouts.

    Args:
        ssl_context: used for https; a default verifying context if None.
        max_idle_per_origin: idle connections kept per origin.
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_idle_per_origin: int = 128
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle: dict[_Origin, list[_Conn]] = {}
        self._closed = False

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_context = ctx
        return self._ssl_context

    async def _connect(self, origin: _Origin, request: httpx.Request) -> _Conn:
        scheme, host, port = origin
        with trio.move_on_after(_timeout(request, "connect")) as scope:
            try:
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
                if scheme == b"https":
                    tls = trio.SSLStream(
                        stream, self._ssl(), server_hostname=host, https_compatible=True
                    )
                    await tls.do_handshake()
                    stream = tls
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        if scope.cancelled_caught:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out")
        return _Conn(stream)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        url = request.url
        scheme = url.raw_scheme
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS.get(scheme, 80))
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            try:
                return await self._exchange(conn, origin, request)
            except _StaleConnection:
                # The server closed a kept-alive connection: try the next one.
                continue
        conn = await self._connect(origin, request)
        try:
            return await self._exchange(conn, origin, request, fresh=True)
        except _StaleConnection as exc:
            raise httpx.RemoteProtocolError("server closed the connection") from exc

    async def _exchange(
        self, conn: _Conn, origin: _Origin, request: httpx.Request, *, fresh: bool = False
    ) -> httpx.Response:
        read_timeout = _timeout(request, "read")
        try:
            await self._send(conn, request)
            event = await self._next_event(conn, read_timeout, head=True, fresh=fresh)
            while isinstance(event, h11.InformationalResponse):
                event = await self._next_event(conn, read_timeout)
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise
        assert isinstance(event, h11.Response)
        headers: list[tuple[bytes, bytes]] = event.headers.raw_items()
        return httpx.Response(
            event.status_code,
            headers=headers,
            stream=_Body(self, conn, origin, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason},
            request=request,
        )

    async def _send(self, conn: _Conn, request: httpx.Request) -> None:
        target = request.url.raw_path
        data = conn.h11.send(
            h11.Request(method=request.method, target=target, headers=request.headers.raw)
        )
        body = request.content
        if body:
            data += conn.h11.send(h11.Data(data=body)) or b""
        data += conn.h11.send(h11.EndOfMessage()) or b""
        try:
            with trio.move_on_after(_timeout(request, "write")) as scope:
                await conn.stream.send_all(data or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _StaleConnection from exc
        if scope.cancelled_caught:
            raise httpx.WriteTimeout("sending the request timed out")

    async def _next_event(
        self, conn: _Conn, read_timeout: float, *, head: bool = False, fresh: bool = True
    ) -> Any:
        c = conn.h11
        while True:
            try:
                event = c.next_event()
            except h11.RemoteProtocolError as exc:
                if head and not fresh and c.their_state is h11.SEND_RESPONSE:
                    raise _StaleConnection from exc
                raise httpx.RemoteProtocolError(f"invalid HTTP response: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_after(read_timeout) as scope:
                try:
                    data = await conn.stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    if head and not fresh:
                        raise _StaleConnection from exc
                    raise httpx.ReadError(f"connection broken: {exc}") from exc
            if scope.cancelled_caught:
                raise httpx.ReadTimeout(f"no data for {read_timeout:g} s")
            if not data and head and not fresh and c.their_state is h11.SEND_RESPONSE:
                raise _StaleConnection
            c.receive_data(bytes(data))

    def _release(self, conn: _Conn, origin: _Origin) -> bool:
        c = conn.h11
        if self._closed or c.our_state is not h11.DONE or c.their_state is not h11.DONE:
            return False
        try:
            c.start_next_cycle()
        except h11.LocalProtocolError:
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


class _StaleConnection(Exception):
    """A reused connection turned out to be closed before any response."""


class _Body(httpx.AsyncByteStream):
    __slots__ = ("_closed", "_conn", "_done", "_origin", "_pool", "_timeout")

    def __init__(self, pool: H11Pool, conn: _Conn, origin: _Origin, timeout: float) -> None:
        self._pool = pool
        self._conn = conn
        self._origin = origin
        self._timeout = timeout
        self._done = False
        self._closed = False

    # An iterator object rather than an async generator: nothing for the
    # garbage collector to finalise when a body is abandoned half-read.
    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            event = await self._pool._next_event(self._conn, self._timeout)
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if not (self._done and self._pool._release(conn, self._origin)):
            await trio.aclose_forcefully(conn.stream)
