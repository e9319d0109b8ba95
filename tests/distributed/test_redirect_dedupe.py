"""A redirect's target is seen crawl-wide (issue 14, item 9), in Redis too:
a link to it later, from this worker or another, is a duplicate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coredis
import msgspec
import pytest
import trio

from crawlmesh import (
    Engine,
    JsonLinesWriter,
    Response,
    SiteRequest,
    SiteResponse,
    Spider,
    open_site_server,
)
from crawlmesh._redis import RedisBackend
from crawlmesh._redis._scripts import SYNC
from crawlmesh._settings import BackendSettings, load_settings
from distributed.redis_server import RedisServer

P = "crawlmesh:{scripts}:"
HTML = [("Content-Type", "text/html; charset=utf-8")]


@pytest.mark.parametrize("dedupe", ["set", "bloom"])
async def test_a_marked_fingerprint_is_a_duplicate_for_every_worker(
    redis: RedisServer, dedupe: str
) -> None:
    fp = "1,5,9" if dedupe == "bloom" else "fp-target"
    async with coredis.Redis(port=redis.port) as client:
        script = client.register_script(SYNC)

        async def sync(worker: str, *ops: str) -> list[Any]:
            reply: list[Any] = await script(
                keys=[P + "seen"], args=[P, worker, "2000", "0", dedupe, "", "0", *ops]
            )
            return reply

        await sync("w1", "m", fp)
        # Another worker's link to the same URL queues nothing...
        assert int((await sync("w2", "p", "a.test", "0", "record", fp, "1"))[5]) == 0
        # ...but one with dont_filter (a token) still goes through.
        reply = await sync("w2", "p", "a.test", "0", "record", fp, "w2:1")
        assert int(reply[5]) == 1


class Site:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.hits[request.target] += 1
        pages = {
            "/": "<a href='/old.html'>x</a>",
            "/a.html": "<h1>a</h1><a href='/next'>x</a>",
            "/next": "<h1>next</h1><a href='/a.html'>x</a><a href='a.html#top'>x</a>",
        }
        if request.target == "/old.html":
            return SiteResponse(301, b"", [("Location", "/a.html")])
        if request.target in pages:
            return SiteResponse(200, pages[request.target].encode(), HTML)
        return SiteResponse(404, b"", HTML)


class Follow(Spider):
    name = "redirect-dedupe"

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = [start]

    def parse(self, response: Response) -> Iterator[Any]:
        title = response.css("h1::text").get()
        if title:
            yield {"url": response.url, "title": title}
        yield from response.follow_all(css="a")


async def test_a_link_to_a_redirect_target_is_a_duplicate_in_redis(
    redis: RedisServer, tmp_path: Path
) -> None:
    site = Site()
    async with open_site_server(site.handle) as base:
        spider = Follow(base + "/")
        backend = RedisBackend(BackendSettings(url=redis.url), spider, concurrency=4)
        out, err = tmp_path / "items.jsonl", tmp_path / "errors.jsonl"
        items, errors = JsonLinesWriter(out), JsonLinesWriter(err)
        settings = load_settings([("test", {"progress_interval": 0, "robots.obey": False})])
        engine = Engine(spider, settings, items=items, errors=errors, backend=backend)
        try:
            with trio.fail_after(30):
                await engine.run()
        finally:
            items.close()
            errors.close()
    found = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert sorted(i["title"] for i in found) == ["a", "next"]
    assert site.hits["/a.html"] == 1
    assert err.read_bytes() == b""
    # The target's fingerprint is in the crawl's shared set, not only this worker's.
    async with coredis.Redis(port=redis.port) as client:
        assert await client.scard("crawlmesh:{redirect-dedupe}:seen") == 4
