"""Whole crawls against a fault-injecting target, in virtual time.

One in-process server plays several sites: requests for ``localhost`` and
for ``127.0.0.1`` reach the same port but are two domains to the crawler,
so one can fail while the other is healthy. Through LiteNodes, the ``Via``
header tells the site which node a request came through, so it can ban one.
Every scenario checks that each request ends exactly one way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from balancer.test_mesh_crawl import open_nodes
from crawling import Pages, run_spider
from crawlmesh import (
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._settings import NodeSpec

CAPTCHA = b"<html><head><title>Attention Required! | Cloudflare</title></head></html>"
PAGE = b"<html><h1 class='title'>ok</h1></html>"


Handler = Callable[[str, str, SiteRequest], "Any"]


THROUGH_NODES: dict[str, Any] = {"robots.obey": False, "progress_interval": 0}
"""The settings of a crawl through LiteNodes."""

RESET = -1.0
"""A rule's answer: reset the connection instead of answering."""


class FaultSite:
    """Answers by domain (the Host header's name) through ``rule(host, path,
    request)``, which returns a SiteResponse, :data:`RESET`, or a number of
    seconds to wait and then answer 200; counts hits and concurrency by host."""

    def __init__(self, rule: Handler) -> None:
        self.rule = rule
        self.hits: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        host = request.headers.get("host", "").rpartition(":")[0]
        self.hits[host] += 1
        self.in_flight[host] += 1
        self.peak[host] = max(self.peak[host], self.in_flight[host])
        try:
            answer = self.rule(host, request.target, request)
            if answer is RESET:
                await trio.aclose_forcefully(stream)
                return None
            if not isinstance(answer, SiteResponse):
                await trio.sleep(answer)
                answer = SiteResponse(200, PAGE)
            self.statuses[host, answer.status] += 1
            return answer
        finally:
            self.in_flight[host] -= 1


def urls(base: str, host: str, n: int, prefix: str = "p") -> list[str]:
    port = base.rpartition(":")[2]
    return [f"http://{host}:{port}/{prefix}/{i}" for i in range(n)]


def assert_each_once(expected: list[str], items: list[dict[str, Any]], errors: list[Any]) -> None:
    ended = [i["url"] for i in items] + [e["url"] for e in errors]
    assert sorted(ended) == sorted(expected), "a request was lost or ended twice"


DEAD: dict[str, Any] = {
    "503": (SiteResponse(503, b"down"), "http_error"),
    "reset": (RESET, "connection_error"),
    "hang": (3600.0, "read_timeout"),
}


@pytest.mark.parametrize("fault", DEAD)
async def test_a_dead_domain_is_held_then_written_off_and_the_other_goes_on(
    tmp_path: Path, loopback_clock: trio.testing.MockClock, fault: str
) -> None:
    answer, kind = DEAD[fault]
    site = FaultSite(lambda host, path, r: answer if host == "localhost" else 0.01)
    async with open_site_server(site.handle) as base:
        dead, alive = urls(base, "localhost", 100), urls(base, "127.0.0.1", 100)
        stats, items, errors = await run_spider(
            Pages(dead + alive),
            tmp_path,
            **{"robots.obey": False, "breaker.park_timeout": 60, "retry.max_attempts": 2},
        )
    assert_each_once(dead + alive, items, errors)
    assert sorted(i["url"] for i in items) == sorted(alive)
    kinds = Counter(e["kind"] for e in errors)
    assert set(kinds) <= {kind, "circuit_open"}, kinds
    assert kinds["circuit_open"] > 50, "most dead requests were held, never sent"
    # Without breakers the dead domain would take ~1.2 attempts per request;
    # held behind its breaker it took only what tripped it and a few probes.
    assert site.hits["localhost"] < 40, site.hits
    assert stats.breaker_transitions["pair:open"] >= 2, "re-opened after a failed probe"
    assert stats.breaker_transitions["pair:half-open"] >= 1
    assert stats.errors_by_kind["circuit_open"] == kinds["circuit_open"]
    assert stats.circuit_holds >= 1


async def test_a_target_that_recovers_closes_its_breaker_and_loses_nothing(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    recovered = trio.current_time() + 20.0

    def rule(host: str, path: str, r: SiteRequest) -> Any:
        return SiteResponse(503, b"down") if trio.current_time() < recovered else 0.01

    site = FaultSite(rule)
    async with open_site_server(site.handle) as base:
        expected = urls(base, "localhost", 60)
        stats, items, errors = await run_spider(
            Pages(expected), tmp_path, **{"robots.obey": False, "retry.max_attempts": 10}
        )
    assert_each_once(expected, items, errors)
    assert len(items) >= 50, f"{len(errors)} errors: {Counter(e['kind'] for e in errors)}"
    t = stats.breaker_transitions
    assert min(t["pair:open"], t["pair:half-open"], t["pair:closed"]) >= 1, t


async def test_a_node_banned_by_one_site_keeps_serving_the_others(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    def rule(host: str, path: str, r: SiteRequest) -> Any:
        if host == "localhost" and "n1" in r.headers.get("via", ""):
            return SiteResponse(200, CAPTCHA)  # a captcha page served as 200
        return 0.01

    site = FaultSite(rule)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("n1", "", 1, 0), ("n2", "", 1, 0)) as (specs, _),
    ):
        shop, other = urls(base, "localhost", 60), urls(base, "127.0.0.1", 60)
        stats, items, errors = await run_spider(
            Pages(shop + other), tmp_path, nodes=specs, **THROUGH_NODES
        )
    assert_each_once(shop + other, items, errors)
    assert errors == []
    by_url = {i["url"]: i["node"] for i in items}
    assert {by_url[u] for u in shop} == {"n2"}, "no captcha page reached the spider"
    assert "n1" in {by_url[u] for u in other}, "n1 still serves the other site"
    assert stats.bans >= 1
    assert stats.breaker_transitions["pair:open"] == 1
    assert stats.breaker_transitions.get("node:open", 0) == 0


async def test_a_hung_node_costs_one_attempt_and_the_request_goes_elsewhere(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    async def hang(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        await trio.sleep_forever()
        raise AssertionError

    site = FaultSite(lambda host, path, r: 0.01)
    async with (
        open_site_server(site.handle) as base,
        open_site_server(hang) as hung_url,
        open_nodes(("ok", "", 1, 0)) as (specs, _),
    ):
        expected = urls(base, "127.0.0.1", 20)
        mesh = [*specs, NodeSpec(name="hung", kind="node", url=hung_url)]
        stats, items, errors = await run_spider(
            Pages(expected), tmp_path, nodes=mesh, **THROUGH_NODES, **{"timeouts.total": 5}
        )
    assert_each_once(expected, items, errors)
    assert errors == []
    assert {i["node"] for i in items} == {"ok"}
    hung = next(n for n in stats.nodes if n.name == "hung")
    assert hung.errors.get("total_timeout", 0) >= 1
    assert stats.retries == hung.errors["total_timeout"]


async def test_aimd_backs_off_a_site_that_pushes_back(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    """The site takes two requests at once and answers 429 (no Retry-After)
    beyond that: AIMD must bring concurrency down to what it takes."""

    def make_site() -> FaultSite:
        def rule(host: str, path: str, r: SiteRequest) -> Any:
            return SiteResponse(429, b"slow down") if site.in_flight[host] > 2 else 0.2

        site = FaultSite(rule)
        return site

    refused = {}
    for enabled in (True, False):
        site = make_site()
        async with open_site_server(site.handle) as base:
            expected = urls(base, "127.0.0.1", 60)
            stats, items, errors = await run_spider(
                Pages(expected), tmp_path, **{"robots.obey": False, "throttle.enabled": enabled}
            )
        assert_each_once(expected, items, errors)
        refused[enabled] = site.statuses["127.0.0.1", 429]
        if enabled:
            assert stats.throttle_decreases >= 2
        else:
            assert stats.throttle_decreases == 0
    assert refused[True] * 3 < refused[False], refused


async def test_timeouts_by_domain_override_the_defaults(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = FaultSite(lambda host, path, r: 3.0)  # every answer takes 3 s
    async with open_site_server(site.handle) as base:
        slow_ok, slow_bad = urls(base, "localhost", 3), urls(base, "127.0.0.1", 3)
        _, items, errors = await run_spider(
            Pages(slow_ok + slow_bad),
            tmp_path,
            **{
                "robots.obey": False,
                "retry.max_attempts": 1,
                "timeouts.read": 1,
                "timeouts.domains": {"localhost": {"read": 10}},
            },
        )
    assert_each_once(slow_ok + slow_bad, items, errors)
    assert sorted(i["url"] for i in items) == sorted(slow_ok)
    assert {e["kind"] for e in errors} == {"read_timeout"}


async def test_a_per_node_rate_applies_to_each_egress_node(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    times: dict[str, list[float]] = {}

    def rule(host: str, path: str, r: SiteRequest) -> Any:
        times.setdefault(r.headers.get("via", ""), []).append(trio.current_time())
        return SiteResponse(200, PAGE)

    site = FaultSite(rule)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("n1", "", 1, 0), ("n2", "", 1, 0)) as (specs, _),
    ):
        expected = urls(base, "localhost", 40)
        start = trio.current_time()
        stats, items, errors = await run_spider(
            Pages(expected),
            tmp_path,
            nodes=specs,
            **THROUGH_NODES,
            rates={"localhost": {"rate": "2/s", "per_node": True}},
        )
        elapsed = trio.current_time() - start
    assert_each_once(expected, items, errors)
    assert errors == []
    assert set(times) == {"1.1 n1", "1.1 n2"}
    for seen in times.values():
        gaps = [b - a for a, b in itertools.pairwise(seen)]
        assert min(gaps) >= 0.5 - 1e-6, "each node keeps to 2/s"
    # 40 requests at 2/s on each of two nodes: about 10 s, not 20.
    assert 9.0 <= elapsed <= 11.0, elapsed
    assert stats.circuit_holds == 0, "waiting for a rate is not a breaker hold"
