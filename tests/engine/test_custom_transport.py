"""A custom transport handed to the engine is the one direct node of a mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from crawlmesh import Engine, FetchOptions, JsonLinesWriter, Request, Response, Spider
from crawlmesh._settings import load_settings


class Canned:
    """Answers every URL from memory."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.closed = False

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        await trio.lowlevel.checkpoint()
        self.fetched.append(request.url)
        body = b'<a href="/b">b</a>' if request.url.endswith("/a") else b""
        return Response(request.url, 200, {}, body, request)

    async def aclose(self) -> None:
        self.closed = True


class Follow(Spider):
    name = "follow"
    start_urls = ["http://example.test/a"]

    async def parse(self, response: Response) -> Any:
        yield {"url": response.url, "node": response.node}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)


async def test_a_custom_transport_crawls_as_a_one_node_mesh(tmp_path: Path) -> None:
    transport = Canned()
    settings = load_settings(
        [("test", {"robots.obey": False, "retry.max_attempts": 1, "progress_interval": 0})]
    )
    items = JsonLinesWriter(tmp_path / "items.jsonl")
    engine = Engine(Follow(), settings, items=items, transport=transport)
    try:
        stats = await engine.run()
    finally:
        items.close()
    assert engine.balancer is not None
    assert [n.name for n in engine.balancer.nodes] == ["direct"]
    assert sorted(transport.fetched) == ["http://example.test/a", "http://example.test/b"]
    assert [(n.name, n.kind, n.requests) for n in stats.nodes] == [("direct", "direct", 2)]
    assert transport.closed
