"""Retries in real crawls over loopback, in virtual time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio
import trio.testing

from crawling import Pages, run_spider
from crawlmesh import SiteRequest, SiteResponse, open_site_server


class Flaky:
    """Answers 503 to the first ``failures`` hits of each path, then 200;
    ``/dead`` paths always 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        path = request.target
        self.hits[path] += 1
        self.times.setdefault(path, []).append(trio.current_time())
        if path.startswith("/dead") or self.hits[path] <= self.failures:
            return SiteResponse(503, b"busy")
        return SiteResponse(200, b"<h1 class='title'>ok</h1>")


async def test_a_503_burst_is_retried_with_backoff(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Flaky(failures=2)
    async with open_site_server(site.handle) as base:
        stats, items, errors = await run_spider(
            Pages([f"{base}/a", f"{base}/b"], dont_filter=True),
            tmp_path,
            # Only the retries' backoff here, not the domain's pushback pause.
            **{"robots.obey": False, "throttle.pushback_pause": 0},
        )
    assert sorted(i["url"] for i in items) == [f"{base}/a", f"{base}/b"]
    assert errors == []
    assert site.hits == {"/a": 3, "/b": 3}
    assert stats.retries == 4
    gaps = [t2 - t1 for t1, t2 in zip(site.times["/a"], site.times["/a"][1:], strict=False)]
    assert all(0 <= g <= 0.5 * 2**i + 0.01 for i, g in enumerate(gaps))  # full jitter bounds


async def test_the_retry_budget_caps_amplification_against_a_dead_target(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Flaky(failures=0)
    async with open_site_server(site.handle) as base:
        stats, items, errors = await run_spider(
            Pages([f"{base}/dead/{i}" for i in range(100)], dont_filter=True),
            tmp_path,
            **{
                "robots.obey": False,
                "retry.max_attempts": 10,
                "retry.budget_min_retries_per_s": 0,
            },
        )
    attempts = sum(site.hits.values())
    assert items == []
    assert len(errors) == 100  # every request accounted for, once
    assert attempts <= 100 * 1.2 + 1, attempts
    assert stats.retry_budget_refusals > 0


async def test_post_is_not_retried_unless_asked(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Flaky(failures=1)
    async with open_site_server(site.handle) as base:
        _, items, errors = await run_spider(
            Pages([f"{base}/form"], method="POST", dont_filter=True),
            tmp_path,
            **{"robots.obey": False},
        )
        assert site.hits["/form"] == 1
        assert [e["status"] for e in errors] == [503]
        site.hits.clear()
        _, items, errors = await run_spider(
            Pages([f"{base}/form2"], method="POST", dont_filter=True),
            tmp_path,
            **{"robots.obey": False, "retry.retry_non_idempotent": True},
        )
    assert site.hits["/form2"] == 2
    assert len(items) == 1


async def test_a_retry_goes_through_another_node(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    from balancer.test_mesh_crawl import open_nodes

    site = Flaky(failures=1)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("a", "", 1, 0), ("b", "", 1, 0)) as (specs, lite),
    ):
        stats, _, _ = await run_spider(
            Pages([f"{base}/x"], dont_filter=True),
            tmp_path,
            nodes=specs,
            **{"robots.obey": False, "progress_interval": 0},
        )
    assert stats.items == 1
    assert site.hits["/x"] == 2
    assert lite["a"].served == 1
    assert lite["b"].served == 1  # the retry avoided the node of the failed attempt
