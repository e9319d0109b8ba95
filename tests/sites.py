"""Test sites served on loopback: a generated site and a hostile one.

Run as a script to serve one in its own process (for CLI tests):
``python tests/sites.py generated --pages 2000 --delay 0.01`` prints the base
URL on stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import gzip
import random
import socket
import struct
import sys
import time
import zlib

import brotli
import trio

from crawlmesh import SiteRequest, SiteResponse, open_site_server

HTML = [("Content-Type", "text/html; charset=utf-8")]


class GeneratedSite:
    """``pages`` pages: page 0 is the index; every page links to its two
    children in a binary tree (so all are reachable), to a few random pages
    (duplicates), to one broken page every 10 pages, and to a few links that
    are not fetchable. Pages whose number is divisible by 3 are item pages."""

    def __init__(
        self, pages: int = 2000, seed: int = 1, delay: float = 0.0, pushback_at: int = 0
    ) -> None:
        self.pages = pages
        self.delay = delay
        # The request of this number (from 1) gets a 429 with Retry-After: 2.
        self.pushback_at = pushback_at
        rng = random.Random(seed)
        self.extra = [[rng.randrange(pages) for _ in range(5)] for _ in range(pages)]
        self.hits: list[str] = []
        self.times: list[float] = []

    def item_pages(self) -> set[int]:
        return {n for n in range(self.pages) if n % 3 == 0}

    def body(self, n: int) -> bytes:
        links = [f"/p/{c}" for c in (2 * n + 1, 2 * n + 2) if c < self.pages]
        links += [f"/p/{c}" if c % 2 else f"{c}" for c in self.extra[n]]
        links.append("/list?b=2&a=1" if n % 2 else "/list?a=1&b=2")
        links += [f"/p/{c}#frag" for c in self.extra[n][:2]]
        if n % 10 == 0:
            links.append(f"/missing/{n}")
        links += ["mailto:x@example.invalid", "javascript:void(0)", "#top"]
        anchors = "".join(f"<a href='{href}'>link</a> " for href in links)
        item = ""
        if n % 3 == 0:
            item = (
                f"<h1 class='title'>Item {n}</h1><p class='price'>{n}.99</p>"
                f"<span class='sku'>SKU-{n:06d}</span>"
            )
        return f"<html><head><title>Page {n}</title></head><body>{item}{anchors}</body></html>".encode()  # noqa: E501

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        path = request.target.partition("?")[0]
        self.hits.append(request.target)
        number = len(self.hits)
        self.times.append(trio.current_time())
        if self.delay:
            await trio.sleep(self.delay)
        if path == "/robots.txt":
            return SiteResponse(404)
        if number == self.pushback_at:
            return SiteResponse(429, b"slow down", [*HTML, ("Retry-After", "2")])
        if path == "/list":
            return SiteResponse(200, b"<p>a list</p>", HTML)
        if path.startswith("/p/") and path[3:].isdigit() and int(path[3:]) < self.pages:
            return SiteResponse(200, self.body(int(path[3:])), HTML)
        return SiteResponse(404, b"not found", HTML)


async def _reset(stream: trio.SocketStream) -> None:
    # SO_LINGER with a zero timeout turns close() into a TCP RST.
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


_OK_CHUNKS = b"2\r\nok\r\n0\r\n"
_BROKEN_HEADS = {
    "/nul-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "/bare-cr-header": b"HTTP/1.1 200 OK\r\nX-A: a\rX-B: b\r\nContent-Length: 2\r\n\r\nok",
    "/unknown-transfer-coding": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\n\r\n" + _OK_CHUNKS + b"\r\n"
    ),
    "/huge-trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + _OK_CHUNKS
        + b"".join(b"X-T-%05d: %s\r\n" % (i, b"v" * 50) for i in range(1200))
        + b"\r\n"
    ),
}


class HostileSite:
    """Pages for every kind of bad input a crawl must survive."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.robots = b""

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        path = request.target
        self.hits.append(path)
        if path == "/robots.txt":
            return SiteResponse(200, self.robots) if self.robots else SiteResponse(404)
        if path == "/never":
            await trio.sleep_forever()
        if path == "/drip":  # headers, then nothing more
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            await trio.sleep_forever()
        if path == "/reset-mid-body":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
            await _reset(stream)
            return None
        if path == "/close-mid-body":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
            return None
        if path == "/garbage":
            await stream.send_all(b"this is not HTTP at all\r\n\r\n")
            return None
        if path in _BROKEN_HEADS:  # HTTP/1.1 a hardened client refuses
            await stream.send_all(_BROKEN_HEADS[path])
            return None
        if path == "/transfer-gzip":  # gzip as a transfer coding, before chunked
            body = gzip.compress(b"<h1 class='title'>transfer-coded</h1>")
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                b"Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            )
            return None
        if path == "/loop-a":
            return SiteResponse(302, headers=[("Location", "/loop-b")])
        if path == "/loop-b":
            return SiteResponse(301, headers=[("Location", "/loop-a")])
        if path.startswith("/chain/"):
            n = int(path[7:])
            if n == 0:
                return SiteResponse(200, b"<h1 class='title'>end of chain</h1>", HTML)
            return SiteResponse(302, headers=[("Location", f"/chain/{n - 1}")])
        if path == "/redirect-bad-scheme":
            return SiteResponse(302, headers=[("Location", "ftp://127.0.0.1/x")])
        if path == "/huge":
            return SiteResponse(200, b"x" * (3 * 1024 * 1024), HTML)
        if path == "/huge-chunked":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"y" * 65536
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            for _ in range(100):
                await stream.send_all(frame)
            await stream.send_all(b"0\r\n\r\n")
            return None
        if path == "/gzip-bomb":
            body = gzip.compress(b"\0" * (64 * 1024 * 1024))
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "gzip")])
        if path == "/br-bomb":
            body = brotli.compress(b"\0" * (64 * 1024 * 1024))
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "br")])
        if path == "/gzip-members":  # 5,000 empty gzip members, then the page
            body = gzip.compress(b"") * 5000 + gzip.compress(b"<h1 class='title'>members</h1>")
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "gzip")])
        if path == "/corrupt-gzip":
            body = b"\x1f\x8b\x08\x00" + b"not really gzip" * 10
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "gzip")])
        if path == "/deflate":
            body = zlib.compress(b"<h1 class='title'>deflated</h1>")
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "deflate")])
        if path == "/br":
            body = brotli.compress(b"<h1 class='title'>brotli</h1>")
            return SiteResponse(200, body, [*HTML, ("Content-Encoding", "br")])
        if path == "/latin1":
            body = "<h1 class='title'>Caf\u00e9 cr\u00e8me</h1>".encode("latin-1")
            return SiteResponse(200, body, [("Content-Type", "text/html; charset=iso-8859-1")])
        if path == "/meta-charset":
            body = (
                "<html><head><meta charset='windows-1251'></head>"
                "<body><h1 class='title'>\u041f\u0440\u0438\u0432\u0435\u0442</h1></body></html>"
            ).encode("cp1251")
            return SiteResponse(200, body, [("Content-Type", "text/html")])
        if path == "/bad-utf8":
            body = b"<h1 class='title'>broken \xff\xfe bytes</h1>"
            return SiteResponse(200, body, HTML)
        if path == "/undeclared-1252":  # no charset anywhere, not UTF-8
            body = "<h1 class='title'>caf\u00e9 \u20ac5 \u201cquoted\u201d</h1>".encode("cp1252")
            return SiteResponse(200, body, [("Content-Type", "text/html")])
        if path == "/failing-links":  # links that fail in the fetch, each its own way
            hrefs = ["/garbage", "/nope", "/loop-a", "/reset-mid-body", "/ok"]
            body = "".join(f"<a href='{h}'>x</a>" for h in hrefs).encode()
            return SiteResponse(200, body, HTML)
        if path == "/files":  # links to bodies that are not pages
            hrefs = ["/files/a.zip", "/files/b.png", "/json", "/ok"]
            body = "".join(f"<a href='{h}'>x</a>" for h in hrefs).encode()
            return SiteResponse(200, b"<h1 class='title'>files</h1>" + body, HTML)
        if path == "/files/a.zip":  # a zip whose bytes hold a title and a link
            body = b"PK\x03\x04\x14\x00<h1 class='title'>zip</h1><a href='/chain/0'>\x00\x01"
            return SiteResponse(200, body, [("Content-Type", "application/zip")])
        if path == "/files/b.png":  # an image served without a Content-Type
            return SiteResponse(200, b"\x89PNG\r\n\x1a\n\x00\x00<h1 class='title'>png</h1>")
        if path == "/malformed":
            body = b"<html><body><h1 class='title'>unclosed <div><p><a href='/chain/0'>x</b></i>"
            return SiteResponse(200, body, HTML)
        if path == "/bad-links":
            hrefs = [
                "http://[::1",
                "http://exa mple.invalid/",
                "ftp://127.0.0.1/file",
                "mailto:a@b.invalid",
                "javascript:alert(1)",
                "http://:80/",
                "http://127.0.0.1:99999/",
                "/chain/0",
            ]
            body = "".join(f"<a href='{h}'>x</a>" for h in hrefs).encode()
            return SiteResponse(200, body, HTML)
        if path == "/bad-host-links":
            # Hosts urlsplit accepts but WHATWG and httpx refuse (an
            # IDNA-invalid name: a joiner between letters; text after an
            # IPv6 literal), then a good link. (A snowman is valid: WHATWG
            # sends it as xn--n3h, as browsers do.)
            hrefs = ["http://a\u200db.invalid/", "http://[::1]x/", "/chain/0"]
            body = "".join(f"<a href='{h}'>x</a>" for h in hrefs).encode()
            return SiteResponse(200, body, HTML)
        if path == "/redirect-bad-ipv6":  # an unclosed IPv6 literal
            return SiteResponse(302, headers=[("Location", "http://[::1")])
        if path == "/redirect-bad-bracket":  # a stray "]" in the host
            return SiteResponse(302, headers=[("Location", "http://a]b/")])
        if path == "/json":
            return SiteResponse(200, b'{"a": [1, 2]}', [("Content-Type", "application/json")])
        if path == "/ok":
            return SiteResponse(200, b"<h1 class='title'>ok</h1>", HTML)
        return SiteResponse(404, b"not found", HTML)


async def _serve(kind: str, pages: int, delay: float, hits: str | None, pushback_at: int) -> None:
    site: GeneratedSite | HostileSite
    if kind == "generated":
        site = GeneratedSite(pages, delay=delay, pushback_at=pushback_at)
    else:
        site = HostileSite()
    handle = site.handle
    if hits is not None:
        log = open(hits, "a", buffering=1)  # noqa: SIM115, ASYNC230 (at start-up, kept open)

        async def handle(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
            log.write(f"{time.time():.6f} {request.target}\n")  # a line per hit, as it comes
            return await site.handle(request, stream)

    async with open_site_server(handle) as base:
        print(base, flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["generated", "hostile"])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hits", help="append 'TIME TARGET' for every request to this file")
    parser.add_argument("--pushback-at", type=int, default=0, help="429 the N-th request")
    args = parser.parse_args()
    try:
        trio.run(_serve, args.kind, args.pages, args.delay, args.hits, args.pushback_at)
    except KeyboardInterrupt:
        sys.exit(0)
