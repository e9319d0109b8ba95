"""Client connections: caps, a header timeout and a write timeout.

hypercorn serves each connection, but it has no cap on how many a node
holds, no deadline for a request head dripped a byte at a time, and it
shields each write from cancellation (a client that never reads pins its
answer, its slot and the drain forever). So the node accepts connections
itself and hands hypercorn a wrapped stream:

* at most ``max_connections`` in all and ``max_client_connections`` per
  address (an IPv6 client by its /64); beyond that a connection gets a
  ``503`` and is closed at once. At the global cap a new connection takes
  the place of the oldest one that has no request in the node (sending a
  head, or idle), so connections that dawdle cannot lock out the rest;
* a request head must be complete ``header_timeout`` seconds after its
  first byte (for a new connection: after it was accepted);
* each write of an answer must be taken by the client within
  ``write_timeout`` seconds, or the connection is closed;
* :meth:`Connections.abort_all` closes every connection (the drain's hard
  deadline, a second signal).

Running out of file descriptors (``EMFILE``) pauses accepting briefly and is
logged once a minute, not once per attempt.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import math
import os
import resource
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

__all__ = ["Connections", "address_key", "raise_open_file_limit"]

_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept() failures that concern one connection only (Linux reports pending
# network errors there).
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN,
        errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EOPNOTSUPP, errno.ETIMEDOUT,
        errno.ECONNRESET, errno.EPERM,
    }
)  # fmt: skip
_FULL_BODY = b'{"error":{"code":"overloaded","message":"too many connections, try again later"}}'
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
) % (len(_FULL_BODY), _FULL_BODY)


def address_key(host: str) -> str:
    """Whom per-address limits count: an IPv4 address, or an IPv6 /64 (one
    subscriber's usual allocation, so rotating addresses gains nothing)."""
    if ":" in host:
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return host


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one, where allowed.

    Returns:
        The soft limit before and after.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError):
            return soft, soft
        return soft, wanted
    return soft, soft


class _Conn(trio.abc.HalfCloseableStream):
    """One client connection as hypercorn sees it, with the node's deadlines."""

    def __init__(self, stream: trio.SocketStream, owner: Connections, peer: tuple[str, int]):
        self._stream = stream
        self.socket = stream.socket  # hypercorn reads the peer's address from it
        self._owner = owner
        self.peer = peer
        # When the head being received must be complete: a number while a
        # head is arriving, inf while the connection idles between requests
        # (hypercorn's keep-alive timeout covers that), None while a request
        # is being served.
        self._head_deadline: float | None = trio.current_time() + owner.header_timeout
        self._receiving: trio.CancelScope | None = None
        self._sending: trio.CancelScope | None = None
        # The scope of the connection's handler: hypercorn keeps a closed
        # connection's task (its keep-alive timer) until the timer ends, so
        # the node ends it itself once nothing more can come of it.
        self.handler_scope = trio.CancelScope()
        self.aborted = False

    # Called by the ASGI wrapper around the app.
    def request_started(self) -> None:
        self._head_deadline = None
        if self._receiving is not None:
            self._receiving.deadline = math.inf  # the body's time is the app's to bound

    def request_done(self) -> None:
        self._head_deadline = math.inf

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.aborted:
            raise trio.ClosedResourceError("closed by the node")
        deadline = self._head_deadline
        data: bytes | bytearray = b""
        try:
            if deadline is None or deadline == math.inf:
                # No head under way: nothing to time (a scope costs ~6 µs).
                data = await self._stream.receive_some(max_bytes)
            else:
                with trio.CancelScope(deadline=deadline) as scope:
                    self._receiving = scope
                    try:
                        data = await self._stream.receive_some(max_bytes)
                    finally:
                        self._receiving = None
                if scope.cancelled_caught:
                    if not self.aborted:
                        self._owner.timed_out("header_timeout", self)
                    self.abort()
                    raise trio.BrokenResourceError("no complete request head in time")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._finish_soon()
            raise
        if not data:
            self._finish_soon()  # the client is gone (the app hears http.disconnect)
        elif self._head_deadline == math.inf:
            self._head_deadline = trio.current_time() + self._owner.header_timeout
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.aborted:
            raise trio.BrokenResourceError("closed by the node")
        view = memoryview(data)
        # Most answers fit in the socket's buffer: one non-blocking write
        # (hypercorn holds a lock around each call) and no scope to time it.
        try:
            # (A closed socket's fileno() is -1, never a descriptor reused since.)
            sent = os.write(self._stream.socket.fileno(), view)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"the client is gone: {exc.strerror}") from exc
        if sent == len(view):
            return
        # hypercorn shields this call from outside cancellation; a scope of
        # our own still ends it at its deadline.
        with trio.CancelScope(deadline=trio.current_time() + self._owner.write_timeout) as scope:
            self._sending = scope
            try:
                await self._stream.send_all(view[sent:])
            finally:
                self._sending = None
        if scope.cancelled_caught:
            if not self.aborted:
                self._owner.timed_out("write_timeout", self)
            self.abort()
            raise trio.BrokenResourceError("the client took no answer in time")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        self._finish_soon()
        await self._stream.aclose()

    def _finish_soon(self) -> None:
        # A second for the app to hear the hang-up and wind down.
        deadline = trio.current_time() + 1.0
        self.handler_scope.deadline = min(self.handler_scope.deadline, deadline)

    @property
    def evictable(self) -> bool:
        """Whether no request of this connection is in the node."""
        return self._head_deadline is not None and not self.aborted

    def abort(self) -> None:
        """Close the connection now, ending any read or write under way."""
        if not self.aborted:
            self._owner.closing += 1
        self.aborted = True
        for scope in (self._receiving, self._sending):
            if scope is not None:
                scope.cancel()
        self.handler_scope.cancel()
        self.close_socket()

    def close_socket(self) -> None:
        self._stream.socket.close()  # wakes a task blocked on it (ClosedResourceError)


class Connections:
    """The node's client connections: accepted, capped, tracked, aborted.

    Args:
        max_connections: open client connections in all.
        max_client_connections: open connections per address (0: no cap).
        header_timeout: seconds for a request head, from its first byte.
        write_timeout: seconds a client gets to take each write of an answer.
        on_refused: called with a reason for each connection refused or cut
            (``connection_cap``, ``header_timeout``, ``write_timeout``).
    """

    def __init__(
        self,
        max_connections: int,
        max_client_connections: int,
        header_timeout: float,
        write_timeout: float,
        on_refused: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.max_connections = max_connections
        self.max_client_connections = max_client_connections
        self.header_timeout = header_timeout
        self.write_timeout = write_timeout
        self._on_refused = on_refused
        self._open: dict[tuple[str, int], _Conn] = {}
        self._per_address: dict[str, int] = {}
        self._last_capacity_log = -math.inf
        self._closed = trio.Event()
        self.closing = 0
        """Connections aborted whose task has not ended yet (their socket is closed)."""
        self.log = structlog.get_logger("crawlmesh.node")

    @property
    def count(self) -> int:
        """Client connections open now."""
        return len(self._open)

    def timed_out(self, reason: str, conn: _Conn) -> None:
        self._on_refused(reason)
        # (Counted in the metrics; a flood must not flood the log too.)
        self.log.debug("connection cut", reason=reason, client=conn.peer[0])

    def wrap_app(self, app: Any) -> Any:
        """``app`` (ASGI) telling each connection when a request is in the app."""

        async def tracked(scope: Any, receive: Any, send: Any) -> None:
            client = scope.get("client")
            conn = self._open.get(tuple(client)) if client else None
            if conn is not None:
                conn.request_started()
            try:
                await app(scope, receive, send)
            finally:
                if conn is not None:
                    conn.request_done()

        return tracked

    def abort_all(self) -> None:
        """Close every client connection now."""
        for conn in list(self._open.values()):
            conn.abort()

    async def wait_closed(self) -> None:
        """Return once no client connection is open."""
        while self._open:
            self._closed = trio.Event()
            await self._closed.wait()

    async def serve(
        self,
        listener: trio.socket.SocketType,
        handler: Callable[[_Conn], Awaitable[object]],
        handlers: trio.Nursery,
    ) -> None:
        """Accept on ``listener`` until cancelled; each connection within the
        caps runs ``handler`` in a task of ``handlers``."""
        while True:
            try:
                sock, _ = await listener.accept()
            except OSError as exc:
                if exc.errno in _CAPACITY_ERRNOS:
                    self._out_of_files(exc)
                    await trio.sleep(0.1)
                    continue
                if exc.errno in _TRANSIENT_ERRNOS:
                    continue
                raise
            self._admit(sock, handler, handlers)

    def _out_of_files(self, exc: OSError) -> None:
        self._on_refused("out_of_files")
        now = trio.current_time()
        if now - self._last_capacity_log >= 60.0:
            self._last_capacity_log = now
            self.log.warning(
                "cannot accept connections", error=exc.strerror, open=self.count,
                hint="raise the open-file limit (ulimit -n) or lower max_connections",
            )  # fmt: skip

    def _admit(
        self,
        sock: trio.socket.SocketType,
        handler: Callable[[_Conn], Awaitable[object]],
        nursery: trio.Nursery,
    ) -> None:
        try:
            peer = sock.getpeername()
        except OSError:
            sock.close()
            return
        host, port = str(peer[0]), int(peer[1])
        address = address_key(host)
        held = self._per_address.get(address, 0)
        over = self.max_client_connections and held >= self.max_client_connections
        if not over and self.count - self.closing >= self.max_connections:
            victim = next((c for c in self._open.values() if c.evictable), None)
            if victim is not None:
                self._on_refused("evicted")
                victim.abort()
            over = victim is None
        if over:
            self._on_refused("connection_cap")
            # A best-effort answer, written without waiting (the socket is
            # new, so its buffer has room); then the connection is closed.
            with contextlib.suppress(OSError):
                os.write(sock.fileno(), _FULL)
            sock.close()
            return
        if sock.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
            sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
        conn = _Conn(trio.SocketStream(sock), self, (host, port))
        self._open[conn.peer] = conn
        self._per_address[address] = held + 1
        nursery.start_soon(self._run, conn, address, handler)

    async def _run(
        self, conn: _Conn, address: str, handler: Callable[[_Conn], Awaitable[object]]
    ) -> None:
        try:
            with conn.handler_scope:
                await handler(conn)
        except Exception:  # one connection's failure is not the node's
            self.log.exception("connection failed", client=conn.peer[0])
        finally:
            del self._open[conn.peer]
            if conn.aborted:
                self.closing -= 1
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            conn.aborted = True  # (counted out above)
            conn.close_socket()
            if not self._open:
                self._closed.set()
