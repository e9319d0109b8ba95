"""Reading a response off a pooled connection: its head, then its body.

Bodies are streamed raw (``Content-Encoding`` untouched): crawlmesh decodes
them itself, under a size limit.
"""

from __future__ import annotations

from typing import Protocol

import httpx
import trio

from .._exceptions import TransportSignal
from ._conn import Conn, receive
from ._http11 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    MAX_HEAD,
    ChunkedDecoder,
    Head,
    ProtocolError,
    parse_head,
)

__all__ = ["Body", "Origin", "Releaser", "StaleConnection", "read_head"]

# (scheme, host, port); a proxy's forwarding connections have their own.
Origin = tuple[bytes, str, int]


class StaleConnection(TransportSignal):
    """A reused connection turned out to be closed before any response."""


class Releaser(Protocol):
    """Where a connection goes back once its body was read to the end."""

    def release(self, conn: Conn, origin: Origin) -> bool:
        """Keep ``conn`` as idle for ``origin``; False if it was not kept."""
        ...


async def read_head(conn: Conn, head_request: bool, read_timeout: float, *, fresh: bool) -> Head:
    """The response head read from ``conn`` (informational responses skipped).

    Raises:
        StaleConnection: ``conn`` was reused (not ``fresh``) and turned out
            closed before any response.
        httpx.RemoteProtocolError: the head is invalid or cut short.
    """
    buf = conn.buf
    scanned = 0  # bytes of buf searched for the head's end
    while True:
        if buf:
            try:
                parsed = parse_head(buf, head_request=head_request, scanned=scanned)
            except ProtocolError as exc:
                if not fresh:
                    raise StaleConnection from exc
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
            data = await receive(conn, read_timeout, waiting=not buf)
        except httpx.ReadError:
            if not fresh:
                raise StaleConnection from None
            raise
        if not data:
            if not fresh:
                raise StaleConnection
            raise httpx.RemoteProtocolError(
                "server closed the connection in the response head"
                if buf
                else "server closed the connection without a response"
            )
        buf += data


class Body(httpx.AsyncByteStream):
    """A response body read off its connection; closing it returns the
    connection to its pool when the body was read to its end."""

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
        self, pool: Releaser, conn: Conn, origin: Origin, head: Head, timeout: float
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
    def __aiter__(self) -> Body:
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
            data = await receive(self._conn, self._timeout)
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
        if not (reuse and self._pool.release(conn, self._origin)):
            await trio.aclose_forcefully(conn.stream)
