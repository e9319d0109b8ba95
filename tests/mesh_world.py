"""A small world for end-to-end crawls through every node kind, each holding
a secret: sites on three loopback addresses, a forward proxy that wants a
password, a ``crawlmesh node`` that wants a bearer token, a scraping API that
wants a key, and a dead node of each kind (with secrets of their own).

Used by tests/test_log_secrets.py and tests/test_cli_stats.py, which run
``crawlmesh crawl`` in a subprocess against it.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trio

from conftest import start_server_process
from crawlmesh import SiteRequest, SiteResponse, open_site_server
from node.nodes import NodeProc, node_process

HTML = [("Content-Type", "text/html; charset=utf-8")]
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")

PROXY_USER = "crawler-q"
PROXY_PASSWORD = "s3cr3t-proxy-pass-XYZ"
DEAD_PROXY_PASSWORD = "s3cr3t-deadproxy-pass-XYZ"
NODE_TOKEN = "s3cr3t-node-token-XYZ-0123456789"
DEAD_NODE_TOKEN = "s3cr3t-deadnode-token-XYZ-98765"
API_KEY = "s3cr3t-api-key-XYZ"
LITERAL_API_KEY = "s3cr3t-literal-key-XYZ"
SECRETS = (
    PROXY_PASSWORD,
    DEAD_PROXY_PASSWORD,
    NODE_TOKEN,
    DEAD_NODE_TOKEN,
    API_KEY,
    LITERAL_API_KEY,
    # What the proxy's Proxy-Authorization header carries.
    base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode(),
    base64.b64encode(f"{PROXY_USER}:{DEAD_PROXY_PASSWORD}".encode()).decode(),
)
ENV = {"CRAWLMESH_TEST_NODE_TOKEN": NODE_TOKEN, "CRAWLMESH_TEST_API_KEY": API_KEY}


class Shop:
    """One domain's site. ``/`` links to ``/p/0`` .. ``/p/{pages-1}`` (each
    with a ``span.sku``, so one item), to the other domains' ``/``, and to
    pages that fail: ``/missing`` (404), ``/boom`` (500, always),
    ``/ban`` (a block page), ``/pushback`` (a 429 with Retry-After: 1, the
    first time) and ``/private/x`` (disallowed by robots.txt)."""

    def __init__(self, host: str, pages: int) -> None:
        self.host = host
        self.pages = pages
        self.base = ""
        self.others: list[str] = []
        self.pushed_back = False

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        path = request.target.partition("?")[0]
        if path == "/robots.txt":
            return SiteResponse(200, b"User-agent: *\nDisallow: /private/\n")
        if path == "/":
            links = [f"/p/{n}" for n in range(self.pages)]
            links += ["/missing", "/boom", "/ban", "/pushback", "/private/x"]
            links += [f"{other}/" for other in self.others]
            body = "".join(f"<a href='{href}'>x</a>" for href in links)
            return SiteResponse(200, body.encode(), HTML)
        if path.startswith("/p/"):
            sku = f"<span class='sku'>{self.host}-{path[3:]}</span>"
            return SiteResponse(200, sku.encode(), HTML)
        if path == "/boom":
            return SiteResponse(500, b"internal error", HTML)
        if path == "/ban":
            return SiteResponse(200, b"<html><title>Access Denied</title></html>", HTML)
        if path == "/pushback":
            if not self.pushed_back:
                self.pushed_back = True
                return SiteResponse(429, b"slow down", [*HTML, ("Retry-After", "1")])
            return SiteResponse(200, b"<p>thanks for waiting</p>", HTML)
        return SiteResponse(404, b"not found", HTML)


class Api:
    """A scraping API: ``GET /v1/?api_key=KEY&url=TARGET`` answers as the
    target would (it asks the target's :class:`Shop` in process)."""

    def __init__(self, shops: dict[str, Shop]) -> None:
        self.shops = shops
        self.calls = 0

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        path, _, query = request.target.partition("?")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        if path != "/v1/" or args.get("api_key") != API_KEY:
            return SiteResponse(401, b'{"error": "invalid api key"}')
        self.calls += 1
        target = urlsplit(args["url"])
        shop = self.shops[target.netloc]
        local = target.path + (f"?{target.query}" if target.query else "")
        return await shop.handle(SiteRequest("GET", local, {}, b""), stream)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secret_proxy() -> Iterator[str]:
    """The proxy (its URL, without credentials) in its own process."""
    yield from start_server_process("proxy_server.py", "--auth", f"{PROXY_USER}:{PROXY_PASSWORD}")


def secret_node(directory: Path) -> Iterator[NodeProc]:
    """A ``crawlmesh node`` whose token is NODE_TOKEN, logging at debug."""
    with node_process(
        directory, "--allow-private", "--log-level", "debug", name="node", token=NODE_TOKEN
    ) as node:
        yield node


@asynccontextmanager
async def open_shops(pages: int) -> AsyncIterator[tuple[dict[str, Shop], str]]:
    """One shop per address of HOSTS and the API; yields the shops by
    ``host:port`` and the API's base URL."""
    async with AsyncExitStack() as stack:
        shops: dict[str, Shop] = {}
        for host in HOSTS:
            shop = Shop(host, pages)
            shop.base = await stack.enter_async_context(open_site_server(shop.handle, host=host))
            shops[shop.base.partition("://")[2]] = shop
        for shop in shops.values():
            shop.others = [s.base for s in shops.values() if s is not shop]
        api = await stack.enter_async_context(open_site_server(Api(shops).handle))
        yield shops, api


def write_nodes(
    directory: Path,
    proxy_url: str,
    node_url: str,
    api_url: str,
    weights: Sequence[float] = (1, 1, 1, 1, 1, 1),
    only: Collection[str] = (),
) -> Path:
    """The mesh file: a live node of each kind, each followed by a dead
    one, with the weights given in that order (``only``: just these)."""
    dead_token = directory / "dead-node-token"
    dead_token.write_text(DEAD_NODE_TOKEN + "\n")
    dead_token.chmod(0o600)
    proxy_port = proxy_url.rpartition(":")[2]
    nodes = [
        ("proxy", "proxy", f"url = 'http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}'"),
        (
            "proxy-dead",
            "proxy",
            f"url = 'http://{PROXY_USER}:{DEAD_PROXY_PASSWORD}@127.0.0.1:{closed_port()}'",
        ),
        ("node", "node", f"url = '{node_url}'\ntoken_env = 'CRAWLMESH_TEST_NODE_TOKEN'"),
        (
            "node-dead",
            "node",
            f"url = 'http://127.0.0.1:{closed_port()}'\ntoken_file = '{dead_token}'",
        ),
        (
            "api",
            "api",
            f"template = '{api_url}/v1/?api_key={{env:CRAWLMESH_TEST_API_KEY}}&url={{url}}'",
        ),
        (
            "api-dead",
            "api",
            f"template = 'http://127.0.0.1:{closed_port()}/v1/?key={LITERAL_API_KEY}&url={{url}}'",
        ),
    ]
    text = "".join(
        f"[[nodes]]\nname = '{name}'\nkind = '{kind}'\n{extra}\nweight = {weight:g}\n\n"
        for (name, kind, extra), weight in zip(nodes, weights, strict=True)
        if not only or name in only
    )
    path = directory / "nodes.toml"
    path.write_text(text)
    return path
