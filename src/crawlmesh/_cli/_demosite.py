"""The demo site: a small bookshop served on loopback, for ``crawlmesh demo``.

Deterministic: ``books`` item pages under ``/catalogue/``, listing pages of
20 books with a next link, a few broken links (404) and a robots.txt that
disallows ``/admin/``. It needs no internet.
"""

from __future__ import annotations

import html
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import msgspec
import trio
from starlette.types import ASGIApp, Receive, Scope, Send

from .._settings import NodeSpec
from .._transport import ErrorBody, ErrorDetail
from ._site_server import SiteRequest, SiteResponse

__all__ = ["DemoSite", "open_demo_nodes"]

_HTML = [("Content-Type", "text/html; charset=utf-8")]
_ROBOTS = b"User-agent: *\nDisallow: /admin/\n"
_WORDS = (
    "river",
    "stone",
    "light",
    "garden",
    "winter",
    "paper",
    "silver",
    "north",
    "quiet",
    "harbor",
    "orchard",
    "lantern",
    "meadow",
    "tide",
    "compass",
    "ember",
    "willow",
    "falcon",
)


class DemoSite:
    """A bookshop of ``books`` books, 20 per listing page."""

    per_page = 20

    def __init__(self, books: int = 200, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.books = [
            (
                " ".join(rng.choice(_WORDS).title() for _ in range(rng.randint(2, 4))),
                f"{rng.randint(300, 6000) / 100:.2f}",
                f"CM-{i:05d}",
            )
            for i in range(books)
        ]
        self.pages = (books + self.per_page - 1) // self.per_page

    @property
    def item_count(self) -> int:
        return len(self.books)

    def _page(self, title: str, body: str) -> SiteResponse:
        doc = (
            f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
            f"<body><nav><a href='/'>Home</a> <a href='/admin/'>Admin</a></nav>{body}</body></html>"
        )
        return SiteResponse(200, doc.encode(), _HTML)

    def _listing(self, n: int) -> SiteResponse:
        start = (n - 1) * self.per_page
        rows = "".join(
            f"<li class='book'><a href='/catalogue/book-{i}.html'>{html.escape(t)}</a></li>"
            for i, (t, _, _) in enumerate(self.books[start : start + self.per_page], start)
        )
        nxt = f"<a class='next' href='/page/{n + 1}.html'>next</a>" if n < self.pages else ""
        broken = "<a href='/catalogue/missing.html'>a broken link</a>" if n % 5 == 0 else ""
        return self._page(f"Books, page {n}", f"<h1>Page {n}</h1><ul>{rows}</ul>{nxt}{broken}")

    def _book(self, i: int) -> SiteResponse:
        title, price, sku = self.books[i]
        body = (
            f"<h1 class='title'>{html.escape(title)}</h1>"
            f"<p class='price'>£{price}</p><span class='sku'>{sku}</span>"
            f"<a href='/page/{i // self.per_page + 1}.html'>back</a>"
        )
        return self._page(title, body)

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        """The site's request handler, for :func:`open_site_server`."""
        path = request.target.partition("?")[0]
        if path == "/robots.txt":
            return SiteResponse(200, _ROBOTS, [("Content-Type", "text/plain")])
        if path in ("/", "/index.html"):
            return self._listing(1)
        if path.startswith("/page/") and path.endswith(".html"):
            n = path[6:-5]
            if n.isdigit() and 1 <= int(n) <= self.pages:
                return self._listing(int(n))
        if path.startswith("/catalogue/book-") and path.endswith(".html"):
            i = path[16:-5]
            if i.isdigit() and int(i) < len(self.books):
                return self._book(int(i))
        return SiteResponse(404, b"<h1>Not found</h1>", _HTML)


# Three local nodes in different regions and weights; ap-1 fails a share of
# its requests (a node fault, 500 internal), so the demo shows failover (and
# its breaker opening, when the failures come in a run). Not a 503
# overloaded: that is pushback, which leaves the node alone for its
# Retry-After, and a random 30% of them would leave ap-1 idle.
_DEMO_NODES = (
    ("eu-1", "eu-west", 3.0, 0.0),
    ("us-1", "us-east", 2.0, 0.0),
    ("ap-1", "asia-pacific", 1.0, 0.3),
)


def _flaky(app: ASGIApp, rate: float, seed: int) -> ASGIApp:
    """``app``, answering a share of /scrape requests ``500 internal``."""
    rng = random.Random(seed)
    body = msgspec.json.encode(ErrorBody(ErrorDetail("internal", "the demo fails a share")))

    async def flaky(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/scrape" and rng.random() < rate:
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return flaky


@asynccontextmanager
async def open_demo_nodes() -> AsyncIterator[list[NodeSpec]]:
    """Serve three ``crawlmesh node`` services in this process, on loopback;
    yields their specs. They run without tokens (allowed on loopback only)
    and with ``allow_private``, since the demo shop is on loopback too."""
    from .._node import NodeConfig, NodeService, serve_node

    async with trio.open_nursery() as nursery:
        specs = []
        for i, (name, region, weight, fail_rate) in enumerate(_DEMO_NODES):
            config = NodeConfig(port=0, name=name, region=region, no_auth=True, allow_private=True)
            # Their process is the crawl's and the site's too: its CPU time
            # is not theirs to report (a busy demo would mark them down).
            service = NodeService(config, own_process=False)
            if fail_rate:
                service.app = _flaky(service.app, fail_rate, seed=i)
            binds = await nursery.start(partial(serve_node, service, handle_signals=False))
            specs.append(
                NodeSpec(name=name, kind="node", url=binds[0], region=region, weight=weight)
            )
        yield specs
        nursery.cancel_scope.cancel()
