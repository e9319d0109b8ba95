"""H11Pool and DirectTransport over loopback: keep-alive, stale connections,
failures, redirects, headers, bodies and cookies.

Two kinds of server: ``open_site_server`` with a recording handler, and a bare
:class:`RawServer` that answers with exact bytes and records request heads as
sent (repeated headers included).
"""

from __future__ import annotations

import fcntl
import gc
import gzip
import re
import struct
import termios
import warnings
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import NamedTuple, Protocol
from urllib.parse import parse_qs, quote

import httpx
import msgspec
import pytest
import trio
import trio.testing

from crawlmesh import (
    ConnectFailed,
    ConnectionBroken,
    DecodingFailed,
    DirectTransport,
    FetchOptions,
    FetchTimeout,
    RedirectError,
    Request,
    ResponseTooLarge,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._transport import H11Pool, _conn
from sites import HostileSite

MiB = 1024 * 1024
OPTS = FetchOptions(max_response_size=MiB, user_agent="test-agent/1.0")


@pytest.fixture
async def transport() -> AsyncIterator[DirectTransport]:
    t = DirectTransport()
    try:
        yield t
    finally:
        await t.aclose()


# -- a recording site ---------------------------------------------------------


class Seen(NamedTuple):
    request: SiteRequest
    port: int  # the client's port: one per connection


class Site:
    """Routes:

    * ``/ok``, any path ending in ``/target``: 200, the path as body
    * ``/redirect?status=N&to=URL`` (under any directory): a redirect to ``to``
    * ``/chain/N``: N redirects to ``/chain/0``
    * ``/set-cookie``: sets ``sid=abc``; ``/set-cookie-and-redirect`` too, then 302s
    * ``/no-content``: 204; ``/head-me``: 200 with a 5-byte body (HEAD gets none)
    * ``/close-after``: a keep-alive response, then the server closes the connection
    * ``/big``: 2 MiB with Content-Length; ``/gzip``: a gzip body
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def paths(self) -> list[str]:
        return [s.request.target.partition("?")[0] for s in self.seen]

    def ports(self) -> list[int]:
        return [s.port for s in self.seen]

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        self.seen.append(Seen(request, stream.socket.getpeername()[1]))
        path, _, query = request.target.partition("?")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        if path == "/ok" or path.endswith("/target"):
            return SiteResponse(200, path.encode())
        if path.endswith("/redirect"):
            headers = [("Location", args["to"])] if "to" in args else []
            return SiteResponse(int(args.get("status", "302")), b"moved", headers)
        if path.startswith("/chain/"):
            n = int(path[7:])
            if n == 0:
                return SiteResponse(200, b"end")
            return SiteResponse(302, headers=[("Location", f"/chain/{n - 1}")])
        if path == "/set-cookie":
            return SiteResponse(200, b"set", [("Set-Cookie", "sid=abc; Path=/")])
        if path == "/set-cookie-and-redirect":
            return SiteResponse(
                302, headers=[("Set-Cookie", "sid=abc; Path=/"), ("Location", "/target")]
            )
        if path == "/no-content":
            return SiteResponse(204)
        if path == "/head-me":
            return SiteResponse(200, b"hello", [("X-Method", request.method)])
        if path == "/close-after":
            # Nothing says the connection will close: the client keeps it.
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclose")
            return None
        if path == "/big":
            return SiteResponse(200, b"b" * (2 * MiB))
        if path == "/gzip":
            body = gzip.compress(b"unzipped " * 1000)
            return SiteResponse(200, body, [("Content-Encoding", "gzip")])
        return SiteResponse(404, b"not found")


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
async def site_url(site: Site) -> AsyncIterator[str]:
    async with open_site_server(site.handle) as base:
        yield base


# -- a raw server ---------------------------------------------------------------


class RawRequest(NamedTuple):
    method: str
    target: str
    headers: list[tuple[str, str]]  # as sent, in order, repeats included
    body: bytes
    port: int

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Reply(NamedTuple):
    data: bytes
    close: bool = False


async def read_head(stream: trio.abc.ReceiveStream, buf: bytes) -> tuple[bytes, bytes] | None:
    """Read until a request head is complete: (the head, the bytes after it),
    or None when the peer closes first. ``buf`` holds what was read already."""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class RawServer:
    """Reads request heads (and Content-Length bodies) off each connection and
    writes back whatever ``respond`` returns, keeping the connection open
    unless told to close it."""

    def __init__(self, respond: Callable[[RawRequest], Reply]) -> None:
        self.respond = respond
        self.requests: list[RawRequest] = []
        self.closed = 0  # connections that have ended
        self.closed_changed = trio.Event()

    async def serve(self, stream: trio.SocketStream) -> None:
        port = stream.socket.getpeername()[1]
        buf = b""
        try:
            while True:
                got = await read_head(stream, buf)
                if got is None:
                    return
                head, buf = got
                first, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = first.split(" ", 2)
                headers = [(k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines)]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                while len(buf) < length:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                request = RawRequest(method, target, headers, body, port)
                self.requests.append(request)
                reply = self.respond(request)
                await stream.send_all(reply.data)
                if reply.close:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)
            self.closed += 1
            self.closed_changed.set()

    async def wait_closed(self, n: int) -> None:
        while self.closed < n:
            self.closed_changed = trio.Event()
            await self.closed_changed.wait()


class _Serves(Protocol):
    async def serve(self, stream: trio.SocketStream) -> None: ...


@asynccontextmanager
async def raw_server(server: _Serves) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


def ok_reply(request: RawRequest) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


# -- keep-alive -------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    for _ in range(5):
        response = await transport.fetch(Request(site_url + "/ok"), OPTS)
        assert (response.status, response.body) == (200, b"/ok")
    assert len(site.seen) == 5
    assert len(set(site.ports())) == 1


async def test_concurrent_requests_open_connections_that_are_then_reused(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    async def fetch_ok() -> None:
        response = await transport.fetch(Request(site_url + "/ok"), OPTS)
        assert response.body == b"/ok"

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(fetch_ok)
    first = set(site.ports())
    assert 1 <= len(first) <= 8
    del site.seen[:]
    for _ in range(8):
        await fetch_ok()
    # Only pooled connections are used: no new one was opened.
    assert set(site.ports()) <= first
    assert len(site.seen) == 8


async def test_server_closing_an_idle_connection_is_retried_on_a_fresh_one(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    paths = ["/close-after", "/ok", "/ok", "/close-after", "/ok", "/close-after", "/close-after"]
    for path in paths:
        response = await transport.fetch(Request(site_url + path), OPTS)
        assert response.status == 200
        assert response.body == (b"close" if path == "/close-after" else path.encode())
    # Each request reached the server exactly once: the one written to a dead
    # connection was never read, and was sent again on a new connection.
    assert site.paths() == paths
    ports = site.ports()
    # A new connection after each /close-after, and only then.
    assert [ports[i] == ports[i - 1] for i in range(1, len(ports))] == [
        False,  # after /close-after
        True,
        True,
        False,  # after /close-after
        True,
        False,  # after /close-after
    ]
    assert len(set(ports)) == 4


async def test_several_stale_idle_connections_are_all_skipped(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(transport.fetch, Request(site_url + "/close-after"), OPTS)
    stale = set(site.ports())
    assert len(stale) == 4
    response = await transport.fetch(Request(site_url + "/ok"), OPTS)
    assert response.body == b"/ok"
    assert site.ports()[-1] not in stale
    assert site.paths().count("/ok") == 1


async def test_many_concurrent_requests_through_closing_connections(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    paths = ["/close-after" if i % 3 == 0 else f"/{i}/target" for i in range(60)]
    bodies: dict[str, bytes] = {}

    async def fetch(path: str) -> None:
        bodies[path] = (await transport.fetch(Request(site_url + path), OPTS)).body

    for _ in range(2):  # the second round meets the first round's idle connections
        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(fetch, path)
    assert bodies == {p: (b"close" if p == "/close-after" else p.encode()) for p in paths}
    assert sorted(site.paths()) == sorted(paths * 2)


async def test_connection_close_is_honoured(transport: DirectTransport) -> None:
    server = RawServer(
        lambda r: Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    )
    async with raw_server(server) as base:
        for _ in range(3):
            response = await transport.fetch(Request(base + "/"), OPTS)
            assert response.body == b"ok"
    assert len({r.port for r in server.requests}) == 3


async def test_http10_close_delimited_body(transport: DirectTransport) -> None:
    server = RawServer(lambda r: Reply(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", close=True))
    async with raw_server(server) as base:
        first = await transport.fetch(Request(base + "/"), OPTS)
        second = await transport.fetch(Request(base + "/"), OPTS)
    assert first.body == second.body == b"until the end"
    assert len({r.port for r in server.requests}) == 2


async def test_interim_100_continue_is_skipped(transport: DirectTransport) -> None:
    server = RawServer(
        lambda r: Reply(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
        )
    )
    async with raw_server(server) as base:
        response = await transport.fetch(Request(base + "/"), OPTS)
        again = await transport.fetch(Request(base + "/"), OPTS)
    assert (response.status, response.body) == (200, b"final")
    assert again.body == b"final"
    assert len({r.port for r in server.requests}) == 1


async def test_a_refused_body_closes_its_connection_and_the_next_request_works(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    with pytest.raises(ResponseTooLarge, match="Content-Length"):
        await transport.fetch(Request(site_url + "/big"), OPTS)
    response = await transport.fetch(Request(site_url + "/ok"), OPTS)
    assert response.body == b"/ok"
    # The unread 2 MiB body made the first connection unusable.
    assert len(set(site.ports())) == 2


async def test_closing_the_pool_closes_idle_connections(
    loopback_clock: trio.testing.MockClock,
) -> None:
    server = RawServer(ok_reply)
    pool = H11Pool()
    async with raw_server(server) as base:
        async with httpx.AsyncClient(transport=pool) as client:
            responses = []
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(lambda: _get(client, base, responses))
            assert responses == [b"ok"] * 3
            assert server.closed == 0
        # Leaving the client closed the pool: every connection is closed.
        with trio.fail_after(60):
            await server.wait_closed(len({r.port for r in server.requests}))
        with pytest.raises(RuntimeError, match="closed"):
            await pool.handle_async_request(httpx.Request("GET", base + "/"))


async def _get(client: httpx.AsyncClient, base: str, out: list[bytes]) -> None:
    response = await client.get(base + "/")
    out.append(response.content)


async def test_max_idle_per_origin_bounds_the_idle_connections(
    loopback_clock: trio.testing.MockClock,
) -> None:
    server = RawServer(ok_reply)
    async with (
        raw_server(server) as base,
        httpx.AsyncClient(transport=H11Pool(max_idle_per_origin=1)) as client,
    ):
        responses: list[bytes] = []
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(lambda: _get(client, base, responses))
        opened = {r.port for r in server.requests}
        assert len(opened) == 3
        # Two of the three are closed at once; one is kept.
        with trio.fail_after(60):
            await server.wait_closed(2)
        del server.requests[:]
        for _ in range(3):
            await _get(client, base, responses)
        assert len({r.port for r in server.requests}) == 1
        assert {r.port for r in server.requests} <= opened
        assert server.closed == 2


# -- failures -----------------------------------------------------------------------


async def test_connection_refused_is_connect_failed(transport: DirectTransport) -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(ConnectFailed) as info:
        await transport.fetch(Request(url), OPTS)
    assert info.value.kind == "connect_error"
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_connect_timeout(
    loopback_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    transport: DirectTransport,
) -> None:
    async def never_connects(host: str, port: int) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    # A SYN that is never answered, without depending on the network.
    monkeypatch.setattr(trio, "open_tcp_stream", never_connects)
    with pytest.raises(FetchTimeout, match="connect timeout") as info:
        await transport.fetch(Request("http://192.0.2.1:81/"), FetchOptions(connect_timeout=10))
    assert info.value.kind == "connect_timeout"
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout)


@pytest.mark.parametrize("path", ["/never", "/drip"])
async def test_read_timeout(
    loopback_clock: trio.testing.MockClock,
    hostile_url: str,
    transport: DirectTransport,
    path: str,
) -> None:
    options = FetchOptions(read_timeout=30)
    with pytest.raises(FetchTimeout) as info:
        await transport.fetch(Request(hostile_url + path), options)
    assert info.value.kind == "read_timeout"
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/reset-mid-body", r"."),
        ("/close-mid-body", r"without sending complete message body"),
        ("/garbage", r"invalid HTTP response"),
    ],
)
async def test_broken_connections(
    hostile_url: str, transport: DirectTransport, path: str, message: str
) -> None:
    with pytest.raises(ConnectionBroken, match=message) as info:
        await transport.fetch(Request(hostile_url + path), OPTS)
    assert info.value.kind == "connection_error"
    assert isinstance(info.value.__cause__, httpx.TransportError)


@pytest.mark.parametrize("path", ["/huge-chunked", "/gzip-bomb", "/corrupt-gzip"])
async def test_a_body_refused_mid_stream_leaves_nothing_for_the_gc(
    hostile_url: str, transport: DirectTransport, path: str
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises((ResponseTooLarge, DecodingFailed)) as info:
            await transport.fetch(Request(hostile_url + path), OPTS)
        gc.collect()
    assert info.value.kind in ("too_large", "decoding_error")
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []


# -- redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "method_after"),
    [(301, "GET"), (302, "GET"), (303, "GET"), (307, "POST"), (308, "POST")],
)
async def test_post_redirects(
    site: Site, site_url: str, transport: DirectTransport, status: int, method_after: str
) -> None:
    url = f"{site_url}/redirect?status={status}&to=/target"
    request = Request(url, method="POST", body=b"payload", headers={"Content-Type": "text/plain"})
    response = await transport.fetch(request, OPTS)

    assert (response.status, response.body) == (200, b"/target")
    assert response.url == site_url + "/target"
    assert response.redirects == (url,)
    first, second = (s.request for s in site.seen)
    assert (first.method, first.body) == ("POST", b"payload")
    assert second.method == method_after
    if method_after == "GET":
        assert second.body == b""
        assert "content-type" not in second.headers
        assert "content-length" not in second.headers
    else:
        assert second.body == b"payload"
        assert second.headers["content-type"] == "text/plain"


async def test_head_stays_head_through_301_and_302(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    for status in (301, 302, 307):
        url = f"{site_url}/redirect?status={status}&to=/target"
        response = await transport.fetch(Request(url, method="HEAD"), OPTS)
        assert (response.status, response.body) == (200, b"")
    assert [s.request.method for s in site.seen] == ["HEAD"] * 6


async def test_head_stays_head_through_303(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    url = f"{site_url}/redirect?status=303&to=/target"
    response = await transport.fetch(Request(url, method="HEAD"), OPTS)
    assert (response.status, response.body) == (200, b"")
    assert [s.request.method for s in site.seen] == ["HEAD", "HEAD"]


@pytest.mark.parametrize(
    ("location", "final"),
    [
        ("../target", "/a/target"),
        ("sub/target", "/a/b/sub/target"),
        ("/abs/target", "/abs/target"),
        ("./target", "/a/b/target"),
        ("../../../target", "/target"),  # dot segments stop at the root
        ("{host}/other/target", "/other/target"),  # scheme-relative
    ],
)
async def test_relative_location_is_resolved_against_the_current_url(
    site: Site, site_url: str, transport: DirectTransport, location: str, final: str
) -> None:
    location = location.format(host=site_url.removeprefix("http:"))
    url = f"{site_url}/a/b/redirect?status=302&to={quote(location)}"
    response = await transport.fetch(Request(url), OPTS)
    assert response.url == site_url + final
    assert response.body == final.encode()
    assert response.redirects == (url,)


async def test_query_only_location(site: Site, site_url: str, transport: DirectTransport) -> None:
    url = f"{site_url}/a/redirect?status=302&to=%3Fpage%3D2"
    response = await transport.fetch(Request(url), OPTS)
    # /a/redirect?page=2 has no "to": a 302 without Location, returned as it is.
    assert response.url == site_url + "/a/redirect?page=2"
    assert response.status == 302


async def test_redirect_chain_is_recorded(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    response = await transport.fetch(Request(site_url + "/chain/3"), OPTS)
    assert response.body == b"end"
    assert response.url == site_url + "/chain/0"
    assert response.redirects == tuple(f"{site_url}/chain/{n}" for n in (3, 2, 1))


async def test_max_redirects(site: Site, site_url: str, transport: DirectTransport) -> None:
    three = FetchOptions(max_redirects=3)
    response = await transport.fetch(Request(site_url + "/chain/3"), three)
    assert response.body == b"end"
    with pytest.raises(RedirectError, match="more than 3 redirects") as info:
        await transport.fetch(Request(site_url + "/chain/4"), three)
    assert info.value.kind == "too_many_redirects"

    none = FetchOptions(max_redirects=0)
    assert (await transport.fetch(Request(site_url + "/chain/0"), none)).body == b"end"
    with pytest.raises(RedirectError) as info:
        await transport.fetch(Request(site_url + "/chain/1"), none)
    assert info.value.kind == "too_many_redirects"


async def test_redirect_loop(
    hostile: HostileSite, hostile_url: str, transport: DirectTransport
) -> None:
    with pytest.raises(RedirectError, match="redirect loop") as info:
        await transport.fetch(Request(hostile_url + "/loop-a"), OPTS)
    assert info.value.kind == "redirect_loop"
    # Detected as soon as a URL comes round again, not after max_redirects.
    assert hostile.hits == ["/loop-a", "/loop-b"]


async def test_a_self_redirect_with_reordered_query_is_a_loop(
    transport: DirectTransport,
) -> None:
    def respond(request: RawRequest) -> Reply:
        target = "/p?b=2&a=1" if request.target == "/p?a=1&b=2" else "/p?a=1&b=2"
        return Reply(
            b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % target.encode()
        )

    server = RawServer(respond)
    async with raw_server(server) as base:
        with pytest.raises(RedirectError, match="redirect loop") as info:
            await transport.fetch(Request(base + "/p?a=1&b=2"), OPTS)
    assert info.value.kind == "redirect_loop"
    assert [r.target for r in server.requests] == ["/p?a=1&b=2"]


async def test_redirect_to_a_non_http_scheme_is_a_bad_redirect(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    url = f"{site_url}/redirect?status=302&to=ftp://127.0.0.1/file"
    with pytest.raises(RedirectError, match=re.escape("ftp://127.0.0.1/file")) as info:
        await transport.fetch(Request(url), OPTS)
    assert info.value.kind == "bad_redirect"
    assert len(site.seen) == 1


async def test_a_redirect_without_location_is_the_response(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    response = await transport.fetch(Request(site_url + "/redirect?status=302"), OPTS)
    assert (response.status, response.body) == (302, b"moved")
    assert response.redirects == ()


async def test_authorization_is_dropped_on_a_cross_origin_redirect(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    other = Site()
    async with open_site_server(other.handle) as other_url:
        headers = {"Authorization": "Bearer secret"}
        same = f"{site_url}/redirect?status=302&to=/target"
        await transport.fetch(Request(same, headers=headers), OPTS)
        cross = f"{site_url}/redirect?status=302&to={other_url}/target"
        response = await transport.fetch(Request(cross, headers=headers), OPTS)
    assert response.url == other_url + "/target"
    # Same origin: kept; another origin (another port): dropped.
    assert [s.request.headers.get("authorization") for s in site.seen] == [
        "Bearer secret",
        "Bearer secret",
        "Bearer secret",
    ]
    [seen] = other.seen
    assert "authorization" not in seen.request.headers


# -- requests and responses -------------------------------------------------------------


async def test_request_headers(transport: DirectTransport) -> None:
    server = RawServer(ok_reply)
    options = FetchOptions(
        user_agent="test-agent/1.0",
        default_headers={"Accept": "text/html", "Accept-Language": "en", "X-Default": "d"},
    )
    async with raw_server(server) as base:
        await transport.fetch(Request(base + "/a"), options)
        await transport.fetch(
            Request(base + "/b", headers={"Accept": "application/json", "X-Own": "o"}), options
        )
    plain, own = server.requests
    assert plain.header_values("User-Agent") == ["test-agent/1.0"]
    assert plain.header_values("Accept") == ["text/html"]
    assert plain.header_values("Accept-Language") == ["en"]
    assert plain.header_values("X-Default") == ["d"]
    assert plain.header_values("Accept-Encoding") == ["gzip, deflate, br"]
    assert plain.header_values("Host") == [base.removeprefix("http://")]
    # The request's own headers win over the defaults, and add to them.
    assert own.header_values("Accept") == ["application/json"]
    assert own.header_values("X-Own") == ["o"]
    assert own.header_values("X-Default") == ["d"]
    assert own.header_values("User-Agent") == ["test-agent/1.0"]


async def test_other_options_bring_their_own_default_headers(transport: DirectTransport) -> None:
    # The transport keeps the merged defaults between requests: new options
    # (other defaults, another User-Agent) must not get the old ones.
    server = RawServer(ok_reply)
    first = FetchOptions(user_agent="one/1", default_headers={"X-A": "a"})
    second = FetchOptions(user_agent="two/2", default_headers={"X-B": "b"})
    async with raw_server(server) as base:
        for options in (first, second, msgspec.structs.replace(second, user_agent="")):
            await transport.fetch(Request(base + "/"), options)
    one, two, three = server.requests
    assert (one.header_values("X-A"), one.header_values("User-Agent")) == (["a"], ["one/1"])
    assert (two.header_values("X-A"), two.header_values("X-B")) == ([], ["b"])
    assert two.header_values("User-Agent") == ["two/2"]
    assert three.header_values("X-B") == ["b"]
    assert three.header_values("User-Agent") == []


async def test_request_headers_win_whatever_their_case(transport: DirectTransport) -> None:
    server = RawServer(ok_reply)
    options = FetchOptions(user_agent="test-agent/1.0", default_headers={"Accept": "text/html"})
    async with raw_server(server) as base:
        request = Request(base + "/", headers={"user-agent": "mine/2", "accept": "text/plain"})
        await transport.fetch(request, options)
    [sent] = server.requests
    assert sent.header_values("User-Agent") == ["mine/2"]
    assert sent.header_values("Accept") == ["text/plain"]


async def test_post_body_is_sent(site: Site, site_url: str, transport: DirectTransport) -> None:
    body = bytes(range(256)) * 100
    request = Request(site_url + "/ok", method="POST", body=body)
    response = await transport.fetch(request, OPTS)
    assert response.status == 200
    [seen] = site.seen
    assert seen.request.method == "POST"
    assert seen.request.body == body
    assert seen.request.headers["content-length"] == str(len(body))


async def test_head_request_has_no_body_and_keeps_the_connection(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    head = await transport.fetch(Request(site_url + "/head-me", method="HEAD"), OPTS)
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == "5"
    assert head.headers["x-method"] == "HEAD"
    get = await transport.fetch(Request(site_url + "/head-me"), OPTS)
    assert get.body == b"hello"
    # The 5 bytes Content-Length announced were not expected after the HEAD.
    assert len(set(site.ports())) == 1


async def test_204_no_content(site: Site, site_url: str, transport: DirectTransport) -> None:
    response = await transport.fetch(Request(site_url + "/no-content"), OPTS)
    assert (response.status, response.body) == (204, b"")
    again = await transport.fetch(Request(site_url + "/ok"), OPTS)
    assert again.body == b"/ok"
    assert len(set(site.ports())) == 1


async def test_chunked_response(transport: DirectTransport) -> None:
    chunks = [b"first,", b"x" * 70000, b",last"]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    server = RawServer(
        lambda r: Reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + framed
            + b"0\r\nX-Trailer: t\r\n\r\n"
        )
    )
    async with raw_server(server) as base:
        response = await transport.fetch(Request(base + "/"), OPTS)
        again = await transport.fetch(Request(base + "/"), OPTS)
    assert response.body == again.body == b"".join(chunks)
    # The whole chunked message was consumed: the connection was reused.
    assert len({r.port for r in server.requests}) == 1


async def test_gzip_body_is_decoded(site: Site, site_url: str, transport: DirectTransport) -> None:
    response = await transport.fetch(Request(site_url + "/gzip"), OPTS)
    assert response.body == b"unzipped " * 1000
    assert response.headers["content-encoding"] == "gzip"


async def test_huge_chunked_body_is_cut_off(hostile_url: str, transport: DirectTransport) -> None:
    # 6.25 MiB, chunked (no Content-Length to refuse early), limit 1 MiB.
    with pytest.raises(ResponseTooLarge, match="size limit of 1048576") as info:
        await transport.fetch(Request(hostile_url + "/huge-chunked"), OPTS)
    assert info.value.kind == "too_large"


# -- cookies -------------------------------------------------------------------------


@pytest.mark.parametrize("cookies", [True, False])
async def test_cookies_are_kept_only_when_enabled(site: Site, site_url: str, cookies: bool) -> None:
    transport = DirectTransport(cookies=cookies)
    try:
        await transport.fetch(Request(site_url + "/set-cookie"), OPTS)
        await transport.fetch(Request(site_url + "/ok"), OPTS)
        await transport.fetch(Request(site_url + "/set-cookie-and-redirect"), OPTS)
    finally:
        await transport.aclose()
    sent = [(s.request.target, s.request.headers.get("cookie")) for s in site.seen]
    jar = "sid=abc" if cookies else None
    assert sent == [
        ("/set-cookie", None),
        ("/ok", jar),
        ("/set-cookie-and-redirect", jar),
        ("/target", jar),
    ]


async def test_cookie_set_by_a_redirect_is_sent_to_its_target(
    site: Site, site_url: str, transport: DirectTransport
) -> None:
    response = await transport.fetch(Request(site_url + "/set-cookie-and-redirect"), OPTS)
    assert response.url == site_url + "/target"
    assert [s.request.headers.get("cookie") for s in site.seen] == [None, "sid=abc"]


# -- framing a hardened client refuses or undoes (issue 14) -----------------------------


def _chunk(data: bytes, size: int = 700) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


PAGE = b"<html><title>the page</title></html>" * 50


@pytest.mark.parametrize(
    ("headers", "wire", "close"),
    [
        (b"Transfer-Encoding: gzip, chunked", _chunk(gzip.compress(PAGE)), False),
        (
            b"Transfer-Encoding: x-gzip\r\nTransfer-Encoding: chunked",
            _chunk(gzip.compress(PAGE)),
            False,
        ),
        (b"Transfer-Encoding: deflate, chunked", _chunk(zlib.compress(PAGE)), False),
        # Close-delimited: the last coding is not chunked.
        (b"Transfer-Encoding: gzip", gzip.compress(PAGE), True),
        # Content-Encoding first, then the transfer coding: both undone.
        (
            b"Content-Encoding: gzip\r\nTransfer-Encoding: gzip, chunked",
            _chunk(gzip.compress(gzip.compress(PAGE))),
            False,
        ),
    ],
    ids=["gzip-chunked", "two-headers", "deflate-chunked", "gzip-until-close", "and-content"],
)
async def test_transfer_codings_are_undone(
    transport: DirectTransport, headers: bytes, wire: bytes, close: bool
) -> None:
    server = RawServer(
        lambda r: Reply(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n\r\n" + wire, close)
    )
    async with raw_server(server) as base:
        first = await transport.fetch(Request(base + "/"), OPTS)
        second = await transport.fetch(Request(base + "/"), OPTS)
    assert first.body == second.body == PAGE
    # A chunked body was read to its end: its connection was kept.
    assert len({r.port for r in server.requests}) == (2 if close else 1)


@pytest.mark.parametrize(
    ("te", "message"),
    [
        (b"compress, chunked", "unsupported transfer coding b'compress'"),
        (b"br, chunked", "unsupported transfer coding b'br'"),
        (b"chunked, gzip", "chunked is not the last transfer coding"),
    ],
)
async def test_a_transfer_coding_that_cannot_be_undone_is_refused(
    transport: DirectTransport, te: bytes, message: str
) -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + _chunk(b"xxxx")
    server = RawServer(lambda r: Reply(wire))
    async with raw_server(server) as base:
        with pytest.raises(ConnectionBroken, match=re.escape(message)) as info:
            await transport.fetch(Request(base + "/"), OPTS)
    assert info.value.kind == "connection_error"


async def test_a_transfer_coded_bomb_is_cut_off_and_corrupt_data_refused(
    transport: DirectTransport,
) -> None:
    bomb = gzip.compress(b"\0" * (64 * MiB))  # ~64 KiB on the wire
    replies = {
        "/bomb": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + _chunk(bomb),
        "/corrupt": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        + _chunk(b"\x1f\x8b\x08\x00 not gzip at all"),
    }
    server = RawServer(lambda r: Reply(replies[r.target]))
    async with raw_server(server) as base:
        with pytest.raises(ResponseTooLarge) as too_large:
            await transport.fetch(Request(base + "/bomb"), OPTS)
        with pytest.raises(DecodingFailed) as corrupt:
            await transport.fetch(Request(base + "/corrupt"), OPTS)
    assert too_large.value.kind == "too_large"
    assert corrupt.value.kind == "decoding_error"


async def wait_acknowledged(sock: trio.socket.SocketType) -> None:
    """Return once the peer has acknowledged every byte sent on ``sock``
    (Linux's SIOCOUTQ is 0): they are in its socket's receive buffer."""
    with trio.fail_after(5):
        # (The kernel's state: nothing to wait on but a query.)
        while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]:  # noqa: ASYNC110
            await trio.sleep(0.001)


class Unsolicited:
    """Answers each request with ``right``; after the first answer, once told
    to, writes a whole second response that answers no request (``sent`` is
    set once the client's socket holds it). Serves plain TCP and TLS streams
    (tests/transport/test_proxy.py)."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.go = trio.Event()
        self.sent = trio.Event()

    async def serve(self, stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
        tcp = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        port = tcp.socket.getpeername()[1]
        buf = b""
        try:
            while True:
                got = await read_head(stream, buf)
                if got is None:
                    return
                buf = got[1]
                self.ports.append(port)
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nright")
                if len(self.ports) == 1:
                    await self.go.wait()
                    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG")
                    await wait_acknowledged(tcp.socket)
                    self.sent.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)


async def test_an_idle_connection_with_bytes_nobody_asked_for_is_discarded(
    transport: DirectTransport,
) -> None:
    server = Unsolicited()
    async with raw_server(server) as base:
        first = await transport.fetch(Request(base + "/"), OPTS)
        server.go.set()  # the connection is idle in the pool now
        with trio.fail_after(10):
            await server.sent.wait()
        second = await transport.fetch(Request(base + "/"), OPTS)
    assert first.body == second.body == b"right"
    assert len(server.ports) == 2
    assert server.ports[0] != server.ports[1]


async def test_a_response_framed_two_ways_leaves_its_connection_unused(
    transport: DirectTransport,
) -> None:
    # Content-Length 3 and chunked: read by its chunks, and never trusted again.
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunk(
        b"by chunks"
    )
    server = RawServer(lambda r: Reply(wire))
    async with raw_server(server) as base:
        first = await transport.fetch(Request(base + "/"), OPTS)
        second = await transport.fetch(Request(base + "/"), OPTS)
    assert first.body == second.body == b"by chunks"
    assert len({r.port for r in server.requests}) == 2


@pytest.mark.parametrize(
    "line",
    [b"X-Bad: a\x00b", b"X-Bad: \x00", b"X-Bad: a\rInjected: 1", b"X-Bad: a\r"],
)
async def test_nul_or_a_bare_cr_in_a_header_value_is_a_broken_response(
    transport: DirectTransport, line: bytes
) -> None:
    wire = b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer(lambda r: Reply(wire))
    async with raw_server(server) as base:
        with pytest.raises(ConnectionBroken, match=r"NUL|bare CR") as info:
            await transport.fetch(Request(base + "/"), OPTS)
    assert info.value.kind == "connection_error"


@pytest.mark.parametrize(
    ("method", "status"),
    [("HEAD", 200), ("GET", 204), ("GET", 304), ("HEAD", 404)],
)
async def test_a_response_without_a_body_is_not_too_large_whatever_its_length(
    transport: DirectTransport, method: str, status: int
) -> None:
    # Content-Length is the size of the body a GET would get (HEAD, 304) or
    # just wrong (204): no body follows either way.
    big = b"%d" % (50 * MiB)
    server = RawServer(
        lambda r: Reply(
            b"HTTP/1.1 %d X\r\nContent-Length: %s\r\n\r\n" % (status, big)
            if r.target == "/empty"
            else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    async with raw_server(server) as base:
        response = await transport.fetch(Request(base + "/empty", method=method), OPTS)
        after = await transport.fetch(Request(base + "/next"), OPTS)
    assert (response.status, response.body) == (status, b"")
    assert response.headers["content-length"] == big.decode()
    assert after.body == b"ok"
    assert len({r.port for r in server.requests}) == 1


async def test_trailers_larger_than_the_head_limit_are_refused(
    transport: DirectTransport,
) -> None:
    trailers = b"".join(b"X-T-%05d: %s\r\n" % (i, b"v" * 50) for i in range(1200))
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + trailers
    server = RawServer(lambda r: Reply(wire + b"\r\n"))
    async with raw_server(server) as base:
        with pytest.raises(ConnectionBroken, match="trailers larger than 64 KiB") as info:
            await transport.fetch(Request(base + "/"), OPTS)
    assert info.value.kind == "connection_error"


async def test_a_dripped_head_is_read_in_few_reads(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"v" * 4000 + b"\r\nContent-Length: 2\r\n\r\n"

    async def drip(stream: trio.SocketStream) -> None:
        stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        for i in range(len(head)):
            await stream.send_all(head[i : i + 1])
            await trio.sleep(0.001)
        await stream.send_all(b"ok")
        await trio.aclose_forcefully(stream)

    reads: list[int] = []
    read_ready = _conn.read_ready

    def counting(fd: int) -> bytes | None:
        data = read_ready(fd)
        if data:
            reads.append(len(data))
        return data

    monkeypatch.setattr(_conn, "read_ready", counting)
    transport = DirectTransport()
    try:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, drip, 0, host="127.0.0.1"))
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
            response = await transport.fetch(Request(url), OPTS)
            nursery.cancel_scope.cancel()
    finally:
        await transport.aclose()
    assert response.body == b"ok"
    assert response.headers["x-pad"] == "v" * 4000
    assert sum(reads) == len(head) + 2
    # A byte a millisecond: after 8 one-byte reads, each read waits 10 ms
    # for what has come by then (without that, one read per byte).
    assert len(reads) < len(head) / 5


class _ThroughHttpx(httpx.AsyncBaseTransport):
    """The pool behind httpx's transport interface only (as the API node kind
    uses it): DirectTransport then reads framing from the headers."""

    def __init__(self) -> None:
        self.pool = H11Pool()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.pool.handle_async_request(request)

    async def aclose(self) -> None:
        await self.pool.aclose()


async def test_framing_rules_hold_behind_httpx_s_interface_too() -> None:
    replies = {
        "/head": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * MiB),
        "/te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        + _chunk(gzip.compress(PAGE)),
        "/big": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * MiB),
    }
    server = RawServer(lambda r: Reply(replies[r.target]))
    transport = DirectTransport(transport=_ThroughHttpx())
    try:
        async with raw_server(server) as base:
            head = await transport.fetch(Request(base + "/head", method="HEAD"), OPTS)
            te = await transport.fetch(Request(base + "/te"), OPTS)
            with pytest.raises(ResponseTooLarge, match="Content-Length"):
                await transport.fetch(Request(base + "/big"), OPTS)
    finally:
        await transport.aclose()
    assert (head.status, head.body) == (200, b"")
    assert te.body == PAGE
