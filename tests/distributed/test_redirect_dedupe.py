"""A redirect's target is seen crawl-wide (issue 14, item 9), in Redis too:
a link to it later, from this worker or another, is a duplicate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import coredis
import pytest
import trio

from crawling import Pages, run_engine
from crawlmesh import (
    Response,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._settings import BackendSettings
from crawlmesh._state._redis import RedisBackend
from crawlmesh._state._redis._outbox import pushes
from crawlmesh._state._redis._scripts import SYNC
from crawlmesh._util._url import canonicalize, fingerprint
from distributed.redis_server import RedisServer

P = "crawlmesh:{scripts}:"
HTML = [("Content-Type", "text/html; charset=utf-8")]


def sync_with(
    client: coredis.Redis[bytes], dedupe: str, prefix: str = P, ttl_ms: str = "2000"
) -> Any:
    """One worker's SYNC call on ``prefix``'s crawl: ``await sync(worker, *ops)``."""
    script = client.register_script(SYNC)

    async def sync(worker: str, *ops: str | bytes) -> list[Any]:
        args = [prefix, worker, ttl_ms, "0", dedupe, "", "0", *ops]
        reply: list[Any] = await script(keys=[prefix + "seen"], args=args)
        return reply

    return sync


@pytest.mark.parametrize("dedupe", ["set", "bloom"])
async def test_a_marked_fingerprint_is_a_duplicate_for_every_worker(
    redis: RedisServer, dedupe: str
) -> None:
    fp = "1,5,9" if dedupe == "bloom" else "fp-target"
    async with coredis.Redis(port=redis.port) as client:
        sync = sync_with(client, dedupe)
        await sync("w1", "m", fp, "")
        # Another worker's link to the same URL queues nothing...
        assert int((await sync("w2", "p", "a.test", "0", "record", fp, "1"))[5]) == 0
        # ...but one with dont_filter (a token) still goes through.
        reply = await sync("w2", "p", "a.test", "0", "record", fp, "w2:1")
        assert int(reply[5]) == 1


@pytest.mark.parametrize("dedupe", ["set", "bloom"])
async def test_a_mark_with_a_token_says_whether_it_was_new_and_says_it_again(
    redis: RedisServer, dedupe: str
) -> None:
    fp = "3,7,11" if dedupe == "bloom" else "fp-final"
    async with coredis.Redis(port=redis.port) as client:
        sync = sync_with(client, dedupe)

        async def marks(worker: str, *ops: str) -> list[Any]:
            return list((await sync(worker, *ops))[13])

        assert await marks("w1", "m", fp, "w1:1") == [b"w1:1", 1]
        # The same op sent again (its reply lost) keeps its answer...
        assert await marks("w1", "m", fp, "w1:1") == [b"w1:1", 1]
        # ...another worker reaching the same URL learns it was seen...
        assert await marks("w2", "m", fp, "w2:1") == [b"w2:1", 0]
        # ...and a mark without a token (a hop of the chain) asks nothing.
        assert await marks("w2", "m", "other" if dedupe == "set" else "5", "") == []


def test_a_batch_with_marks_is_read_back_op_by_op() -> None:
    # (A lost crawl hands the batch's unstored requests back through this.)
    ops: list[bytes | str] = ["m", b"fp", "", "p", "a.test", "0", b"rec", b"fp2", "1"]
    assert pushes(ops) == [("a.test", b"rec")]


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


def titled(response: Response) -> dict[str, Any] | None:
    """A page with an ``<h1>``: its URL and title; no item for the others."""
    title = response.css("h1::text").get()
    return {"url": response.url, "title": title} if title else None


def follow(start: str) -> Pages:
    """Every page reachable from ``start``, :func:`titled` (the start request
    passes the dupe filter, as a spider's ``start_urls`` do)."""
    return Pages([start], follow=True, item=titled, dont_filter=True)


SETTINGS: dict[str, Any] = {"progress_interval": 0, "robots.obey": False}


async def test_a_link_to_a_redirect_target_is_a_duplicate_in_redis(
    redis: RedisServer, tmp_path: Path
) -> None:
    site = Site()
    async with open_site_server(site.handle) as base:
        spider = follow(base + "/")
        backend = RedisBackend(BackendSettings(url=redis.url), spider, concurrency=4)
        with trio.fail_after(30):
            crawl, _ = await run_engine(spider, tmp_path, SETTINGS, backend=backend)
    assert sorted(i["title"] for i in crawl.items) == ["a", "next"]
    assert site.hits["/a.html"] == 1
    assert crawl.errors == []
    # The target's fingerprint is in the crawl's shared set, not only this worker's.
    async with coredis.Redis(port=redis.port) as client:
        assert await client.scard("crawlmesh:{pages}:seen") == 4


class Elsewhere:
    """A site whose first page, while it is served, has another worker of
    the crawl reach ``/a.html`` by a redirect of its own (its mark arrives
    through the crawl's script, as that worker's sync would send it)."""

    def __init__(self, redis: RedisServer, namespace: str) -> None:
        self.hits: Counter[str] = Counter()
        self.redis = redis
        self.prefix = f"crawlmesh:{{{namespace}}}:"

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.hits[request.target] += 1
        if request.target == "/":
            port = stream.socket.getsockname()[1]
            fp = fingerprint("GET", canonicalize(f"http://127.0.0.1:{port}/a.html"))
            async with coredis.Redis(port=self.redis.port) as client:
                sync = sync_with(client, "set", self.prefix, ttl_ms="60000")
                await sync("other-worker", "m", fp, "other:1")
            return SiteResponse(200, b"<a href='/old.html'>x</a>", HTML)
        if request.target == "/old.html":
            return SiteResponse(301, b"", [("Location", "/a.html")])
        if request.target == "/a.html":
            return SiteResponse(200, b"<h1>a</h1>", HTML)
        return SiteResponse(404, b"", HTML)


async def test_a_redirect_to_a_page_another_worker_reached_is_a_duplicate(
    redis: RedisServer, tmp_path: Path
) -> None:
    site = Elsewhere(redis, "pages")
    async with open_site_server(site.handle) as base:
        spider = follow(base + "/")
        backend = RedisBackend(BackendSettings(url=redis.url), spider, concurrency=4)
        with trio.fail_after(30):
            crawl, _ = await run_engine(spider, tmp_path, SETTINGS, backend=backend)
    # The other worker's page: this one fetched the redirect, and no item.
    assert site.hits["/a.html"] == 1
    assert crawl.items == []
    assert crawl.stats.filtered["duplicate"] >= 1
    assert crawl.errors == []


async def test_seen_first_does_not_wait_when_no_sync_runs(redis: RedisServer) -> None:
    # (Before run() and after it stops: nothing would answer, and a page is
    # never dropped on a guess.)
    backend = RedisBackend(
        BackendSettings(url=redis.url), follow("http://127.0.0.1:1/"), concurrency=1
    )
    with trio.fail_after(1):
        assert await backend.seen_first(b"\x01" * 16) is True
