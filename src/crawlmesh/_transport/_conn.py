"""A connection of the pool and its socket I/O.

A plain TCP connection is read and written through its descriptor (one
``os.read``/``os.write`` when the socket is ready, none of a stream's locking
and checkpoints); TLS goes through the stream.
"""

from __future__ import annotations

import os
import select

import httpx
import trio

__all__ = [
    "READ_SIZE",
    "Conn",
    "open_tcp",
    "read_ready",
    "readable_while_idle",
    "receive",
    "send_all",
]


READ_SIZE = 65536
# A peer that drips its response (a byte per packet) would cost the event
# loop one wake-up per byte: after this many reads in a row of fewer than
# _SMALL_READ bytes, each read waits _DRIP_PAUSE first, so that what has come
# by then is taken in one read. A sender that is only slow, not dripping, is
# unaffected: its reads are large again after the first pause.
_DRIP_READS = 8
_SMALL_READ = 512
_DRIP_PAUSE = 0.01


class Conn:
    """A connection to an origin (or a proxy): its stream and unread bytes."""

    __slots__ = ("buf", "fd", "forward", "small_reads", "socket_fd", "stream")

    def __init__(self, stream: trio.abc.Stream, *, forward: bool = False) -> None:
        self.stream = stream
        # A plain TCP connection is read and written through its descriptor
        # (see receive and send_all); TLS goes through the stream.
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


async def open_tcp(host: str, port: int) -> trio.abc.Stream:
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc


async def send_all(conn: Conn, data: bytes, write_timeout: float) -> None:
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


def read_ready(fd: int) -> bytes | None:
    """What the non-blocking socket ``fd`` holds (empty at its end), or None
    if nothing yet.

    Raises:
        httpx.ReadError: the connection is broken.
    """
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise httpx.ReadError(f"connection broken: {exc}") from exc


def readable_while_idle(conn: Conn) -> bool:
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
            return read_ready(fd) is not None
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


async def receive(conn: Conn, read_timeout: float, *, waiting: bool = False) -> bytes:
    """The next bytes from ``conn`` (empty at the end of the stream); after
    _DRIP_READS small reads in a row, a pause of _DRIP_PAUSE first."""
    if conn.small_reads >= _DRIP_READS:
        await trio.sleep(_DRIP_PAUSE)
    data = await _receive_some(conn, read_timeout, waiting)
    conn.small_reads = conn.small_reads + 1 if 0 < len(data) < _SMALL_READ else 0
    return data


async def _receive_some(conn: Conn, read_timeout: float, waiting: bool) -> bytes:
    """The next bytes from ``conn`` (empty at the end of the stream).

    On a plain TCP connection: what the socket holds if it holds anything
    (the rest of a body often does), else one wait until it is readable.
    ``waiting``: nothing can have arrived yet (a request was just sent), so
    wait first rather than spend a system call to learn it.
    """
    fd = conn.fd
    if fd is not None:
        if not waiting:
            data = read_ready(fd)
            if data is not None:
                return data
        with trio.move_on_after(read_timeout):
            while True:
                await trio.lowlevel.wait_readable(fd)
                data = read_ready(fd)
                if data is not None:
                    return data
        raise httpx.ReadTimeout(f"no data for {read_timeout:g} s")
    with trio.move_on_after(read_timeout) as scope:
        try:
            return bytes(await conn.stream.receive_some(READ_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpx.ReadError(f"connection broken: {exc}") from exc
    assert scope.cancelled_caught
    raise httpx.ReadTimeout(f"no data for {read_timeout:g} s")
