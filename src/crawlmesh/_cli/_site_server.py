"""A small HTTP/1.1 server on Trio, for the demo site and for test sites.

Handlers get the parsed request and the raw stream; they return a
:class:`SiteResponse`, or None after taking the stream over themselves (to
stall, reset or send something malformed, as hostile test sites do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import h11
import msgspec
import trio

__all__ = ["SiteRequest", "SiteResponse", "open_site_server"]


class SiteRequest(msgspec.Struct, frozen=True):
    """A request as a site handler sees it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class SiteResponse(msgspec.Struct):
    """What a site handler answers; Content-Length is added for it."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = []


Handler = Callable[[SiteRequest, trio.SocketStream], Awaitable[SiteResponse | None]]


async def _serve_connection(handler: Handler, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(bytes(data))
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            site_request = SiteRequest(
                method=request.method.decode(),
                target=request.target.decode("latin-1"),
                headers={k.decode().lower(): v.decode("latin-1") for k, v in request.headers},
                body=bytes(body),
            )
            response = await handler(site_request, stream)
            if response is None:
                return  # the handler took the stream over
            headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
            if request.method != b"HEAD" or response.body:
                headers.append(("Content-Length", str(len(response.body))))
            out = conn.send(h11.Response(status_code=response.status, headers=headers))
            if response.body and request.method != b"HEAD":
                out += conn.send(h11.Data(data=response.body)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
            await stream.send_all(out or b"")
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_site_server(
    handler: Handler, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``handler`` on ``host`` (an ephemeral port by default) while the
    block runs; yields the base URL, e.g. ``http://127.0.0.1:40123``."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_serve_connection, handler), port, host=host)
        )
        bound = listeners[0].socket.getsockname()
        yield f"http://{host}:{bound[1]}"
        nursery.cancel_scope.cancel()
