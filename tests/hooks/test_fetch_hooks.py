"""Fetch hooks over whole crawls: what each return value does, hostile
hooks (raising, wrong types, blocking, looping), and that every request
still ends exactly one way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from crawling import Pages, run_engine
from crawlmesh import DropRequest, FetchError, Headers, Request, Response, Spider
from sites import GeneratedSite

from .shop import Shop, not_404, page_of

NO_ROBOTS = {"robots.obey": False, "progress_interval": 0, "retry.backoff_base": 0}


class Seen:
    """Records what the hooks were shown."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.responses: list[tuple[str, str]] = []

    def on_request(self, request: Request, node: str) -> Request:
        self.requests.append((request.url, node))
        return request.replace(headers={**(request.headers or {}), "X-Via": node})

    async def on_response(self, request: Request, response: Response) -> None:
        await trio.lowlevel.checkpoint()
        self.responses.append((response.url, response.node))


async def test_hooks_see_every_attempt_and_its_node(tmp_path: Path) -> None:
    heard: list[str | None] = []
    site = GeneratedSite(30)

    async def handle(request: Any, stream: Any) -> Any:
        heard.append(dict(request.headers).get("x-via"))
        return await site.handle(request, stream)

    from crawlmesh import open_site_server

    seen = Seen()
    async with open_site_server(handle) as base:
        crawl, _ = await run_engine(Shop(base, fetch_hooks=[seen]), tmp_path, NO_ROBOTS)
    assert crawl.stats.pages == len(seen.responses) == len(seen.requests) == len(heard)
    assert {node for _, node in seen.requests} == {"direct"}
    assert {node for _, node in seen.responses} == {"direct"}
    assert set(heard) == {"direct"}, "the changed request is what was sent"


class Canned:
    """Answers /p/4 itself, drops /p/7, and replaces /p/9 with /p/9?alt."""

    def on_request(self, request: Request, node: str) -> Request | Response | None:
        page = page_of(request)
        if page == 4:
            body = b"<h1 class='title'>Item 4 (canned)</h1>"
            return Response(
                request.url, 200, Headers([("Content-Type", "text/html")]), body, request
            )
        if page == 7:
            raise DropRequest()
        return None

    def on_response(self, request: Request, response: Response) -> Request | None:
        if page_of(request) == 9 and "?" not in request.url:
            return Request(request.url + "?alt=1")
        return None


async def test_answers_drops_and_replacements_end_each_request_once(
    shop: GeneratedSite, shop_url: str, tmp_path: Path
) -> None:
    crawl, _ = await run_engine(Shop(shop_url, fetch_hooks=[Canned()]), tmp_path, NO_ROBOTS)
    hits = [h for h in shop.hits if h.startswith("/p/")]
    assert "/p/4" not in hits, "answered by the hook: nothing sent"
    assert "/p/7" not in hits
    assert hits.count("/p/9") == 1
    assert hits.count("/p/9?alt=1") == 1
    titles = crawl.titles()
    assert "Item 4 (canned)" in titles
    assert "Item 9" in titles  # from the replacement's page
    assert crawl.stats.filtered["dropped_by_hook"] == 1
    assert crawl.stats.filtered["replaced_by_hook"] == 1
    assert not_404(crawl.errors) == []
    # /p/7's children are only reachable through it (and random links).
    assert crawl.stats.finish_reason == "finished"


class Broken:
    """A hook with bugs: raises on /p/1, returns an int on /p/2, blocks on /p/5."""

    async def on_request(self, request: Request, node: str) -> Any:
        page = page_of(request)
        if page == 1:
            raise KeyError("session")
        if page == 2:
            return 42
        if page == 5:
            await trio.sleep_forever()
        return None


class Errbacks(Pages):
    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls)
        self.failures: list[FetchError] = []

    async def start(self) -> Any:
        for url in self.urls:
            yield Request(url, errback=self.failed)

    def failed(self, error: FetchError) -> None:
        self.failures.append(error)


async def test_a_broken_hook_fails_its_request_by_name_and_nothing_is_lost(
    shop: GeneratedSite, shop_url: str, tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    urls = [f"{shop_url}/p/{n}" for n in range(6)]
    spider = Errbacks(urls)
    spider.fetch_hooks = [Broken()]
    settings = {**NO_ROBOTS, "hook_timeout": 5.0}
    crawl, _ = await run_engine(spider, tmp_path, settings)
    by_url = {e["url"].rpartition("/")[2]: e for e in crawl.errors}
    assert set(by_url) == {"1", "2", "5"}
    assert by_url["1"]["kind"] == "hook_error"
    assert by_url["1"]["reason"] == "Broken.on_request raised KeyError: 'session'"
    assert by_url["2"]["reason"] == (
        "Broken.on_request returned int; expected None, a Request or a Response"
    )
    assert by_url["5"]["kind"] == "hook_timeout"
    assert "Broken.on_request took longer than hook_timeout (5 s)" in by_url["5"]["reason"]
    assert sorted(e.kind for e in spider.failures) == ["hook_error", "hook_error", "hook_timeout"]
    assert sorted(i["url"].rpartition("/")[2] for i in crawl.items) == ["0", "3", "4"]
    assert [h for h in shop.hits if h in ("/p/1", "/p/2", "/p/5")] == [], "never sent, nor retried"
    assert crawl.stats.hook_errors == {"Broken.on_request": 3}


class Loop:
    """Asks for the same page again, forever."""

    def on_response(self, request: Request, response: Response) -> Request:
        return Request(request.url)


async def test_a_hook_that_replaces_forever_fails_as_a_loop(
    shop: GeneratedSite, shop_url: str, tmp_path: Path
) -> None:
    spider = Pages([f"{shop_url}/p/3"])
    spider.fetch_hooks = [Loop()]
    crawl, _ = await run_engine(spider, tmp_path, {**NO_ROBOTS, "hook_max_replacements": 3})
    assert [e["kind"] for e in crawl.errors] == ["hook_loop"]
    assert "Loop.on_response replaced" in crawl.errors[0]["reason"]
    assert crawl.stats.filtered["replaced_by_hook"] == 3
    assert shop.hits.count("/p/3") == 4
    assert crawl.items == []


class Recover:
    """Answers for a node that cannot connect."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def on_error(self, request: Request, error: FetchError) -> Response:
        self.kinds.append(error.kind)
        return Response(request.url, 200, Headers(), b"<h1>offline copy</h1>", request)


async def test_on_error_can_recover_a_failed_fetch(tmp_path: Path) -> None:
    # A port nothing listens on: every connect is refused.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recover = Recover()
    spider = Pages([f"http://127.0.0.1:{port}/a"])
    spider.fetch_hooks = [recover]
    crawl, _ = await run_engine(spider, tmp_path, {**NO_ROBOTS, "retry.max_attempts": 1})
    assert recover.kinds == ["connect_error"]
    assert [i["url"] for i in crawl.items] == [f"http://127.0.0.1:{port}/a"]
    assert crawl.errors == []


def test_spiders_have_no_hooks_by_default() -> None:
    assert Spider().fetch_hooks == ()
