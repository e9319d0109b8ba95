"""robots.txt is obeyed by default, Crawl-delay honoured (in virtual time)."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio
import trio.testing

from crawling import Pages, run_spider
from crawlmesh import SiteRequest, SiteResponse, open_site_server


class Site:
    def __init__(self, robots: tuple[int, bytes]) -> None:
        self.robots = robots
        self.log: list[tuple[str, float]] = []

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.log.append((request.target, trio.current_time()))
        if request.target == "/robots.txt":
            return SiteResponse(*self.robots)
        return SiteResponse(200, b"<h1 class='title'>x</h1>")


def pages(base: str, paths: list[str]) -> Pages:
    """The site's ``paths``, one item each (only a URL is asserted on)."""
    return Pages([base + p for p in paths])


async def test_disallowed_paths_are_filtered(tmp_path: Path) -> None:
    site = Site((200, b"User-agent: *\nDisallow: /private\n"))
    async with open_site_server(site.handle) as base:
        stats, items, errors = await run_spider(pages(base, ["/a", "/private/x", "/b"]), tmp_path)
    assert sorted(i["url"].removeprefix(base) for i in items) == ["/a", "/b"]
    assert stats.filtered["robots"] == 1
    assert errors == []
    assert [t for t, _ in site.log].count("/robots.txt") == 1
    assert "/private/x" not in [t for t, _ in site.log]


async def test_obey_false_ignores_robots(tmp_path: Path) -> None:
    site = Site((200, b"User-agent: *\nDisallow: /\n"))
    async with open_site_server(site.handle) as base:
        _stats, items, _ = await run_spider(pages(base, ["/a"]), tmp_path, **{"robots.obey": False})
    assert len(items) == 1
    assert "/robots.txt" not in [t for t, _ in site.log]


async def test_crawl_delay_spaces_requests(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Site((200, b"User-agent: *\nCrawl-delay: 10\n"))
    async with open_site_server(site.handle) as base:
        _stats, items, _ = await run_spider(
            pages(base, [f"/p{i}" for i in range(4)]), tmp_path, concurrency_per_domain=8
        )
    assert len(items) == 4
    times = [t for target, t in site.log if target != "/robots.txt"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(g >= 10 for g in gaps), gaps


async def test_robots_server_error_disallows_and_reports(tmp_path: Path) -> None:
    site = Site((503, b"busy"))
    async with open_site_server(site.handle) as base:
        stats, items, errors = await run_spider(pages(base, ["/a", "/b"]), tmp_path)
    assert items == []
    assert stats.errors_by_kind == {"robots_unavailable": 2}
    assert sorted(e["url"].removeprefix(base) for e in errors) == ["/a", "/b"]


async def test_robots_404_allows_everything(tmp_path: Path) -> None:
    site = Site((404, b""))
    async with open_site_server(site.handle) as base:
        _, items, _ = await run_spider(pages(base, ["/a", "/b"]), tmp_path)
    assert len(items) == 2
