"""Rate rules and Retry-After in a real crawl over loopback, in virtual time."""

from __future__ import annotations

from email.utils import formatdate
from pathlib import Path

import pytest
import trio
import trio.testing

from crawling import Pages, run_spider
from crawlmesh import (
    SettingsError,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._settings import load_settings


class Recorder:
    def __init__(self, throttle_first: str | None = None) -> None:
        self.log: list[tuple[str, str, float]] = []
        self.throttle_first = throttle_first

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        self.log.append((host, request.target, trio.current_time()))
        if self.throttle_first is not None and len(self.log) == 1:
            return SiteResponse(429, b"slow down", [("Retry-After", self.throttle_first)])
        return SiteResponse(200, b"<h1 class='title'>ok</h1>")


def starts(log: list[tuple[str, str, float]], host: str) -> list[float]:
    return [t for h, target, t in log if h == host]


async def test_a_rate_rule_spaces_one_domain_and_leaves_others_alone(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder()
    async with open_site_server(site.handle) as base:
        port = base.rsplit(":", 1)[1]
        urls = [f"http://127.0.0.1:{port}/a{i}" for i in range(10)]
        urls += [f"http://localhost:{port}/b{i}" for i in range(10)]
        _stats, items, _ = await run_spider(
            Pages(urls),
            tmp_path,
            **{"robots.obey": False, "rates": {"127.0.0.1": {"rate": "2/s", "burst": 3}}},
        )
    assert len(items) == 20
    limited = starts(site.log, "127.0.0.1")
    t0 = limited[0]
    # A burst of 4 (burst 3 + 1) at once, then one every 0.5 s.
    assert [round(t - t0, 3) for t in limited] == [0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    free = starts(site.log, "localhost")
    assert max(free) - min(free) < 0.5  # not held up by the limited domain


async def test_retry_after_pauses_the_domain_for_as_long_as_it_says(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder(throttle_first="7")
    async with open_site_server(site.handle) as base:
        urls = [f"{base}/p{i}" for i in range(4)]
        stats, items, errors = await run_spider(
            Pages(urls), tmp_path, **{"robots.obey": False, "concurrency_per_domain": 1}
        )
    assert len(items) == 4
    times = [t for _, _, t in site.log]
    assert times[1] - times[0] >= 7.0
    assert times[1] - times[0] < 7.1
    assert stats.retry_after_pauses == 1
    # The throttled page was retried (after the pause) and delivered.
    targets = [target for _, target, _ in site.log]
    assert sorted(targets) == sorted(["/p0", "/p0", "/p1", "/p2", "/p3"])
    assert stats.retries == 1
    assert errors == []


async def test_retry_after_as_an_http_date(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    import time

    site = Recorder(throttle_first=formatdate(time.time() + 30, usegmt=True))
    async with open_site_server(site.handle) as base:
        urls = [f"{base}/p{i}" for i in range(3)]
        await run_spider(
            Pages(urls), tmp_path, **{"robots.obey": False, "concurrency_per_domain": 1}
        )
    times = [t for _, _, t in site.log]
    assert 28.5 <= times[1] - times[0] <= 30.5  # to the second (the date has 1 s resolution)


def test_bad_rate_rules_are_refused_naming_the_glob() -> None:
    with pytest.raises(SettingsError, match=r"rate rule '\*\.example\.com'"):
        load_settings([("-s", {"rates": {"*.example.com": {"rate": "5/x"}}})])
    with pytest.raises(SettingsError, match="rate rule 'a/b'"):
        load_settings([("-s", {"rates": {"a/b": {"rate": "5/s"}}})])
