"""Nodes that push back (their own 429/503 with Retry-After), in virtual time.

A node's pushback is not the target's failure: the balancer leaves the node
alone for its Retry-After, and a request every node refused is held until
the first node takes requests again, then sent on any node, without using
up an attempt. A mesh that never takes it ends the request, once, with the
node's error kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from balancer.test_mesh_crawl import open_nodes
from crawling import Pages, run_spider
from crawlmesh import SiteResponse, open_site_server
from resilience.test_engine_faults import PAGE, FaultSite, assert_each_once, urls

MESH = (("a", "", 1, 0), ("b", "", 1, 0), ("c", "", 1, 0))
SETTINGS = {"robots.obey": False, "progress_interval": 0}


@pytest.mark.parametrize("status", [429, 503])
async def test_a_request_every_node_pushes_back_waits_for_them_and_is_delivered(
    tmp_path: Path, loopback_clock: trio.testing.MockClock, status: int
) -> None:
    site = FaultSite(lambda host, path, r: SiteResponse(200, PAGE))
    fetched_at: list[float] = []
    async with open_site_server(site.handle) as base, open_nodes(*MESH) as (specs, lite):
        start = trio.current_time()
        for node in lite.values():
            node.push_back_until = start + 5  # the whole mesh says "not now"
            node.push_back_status, node.push_back_after = status, "2"
        site.rule = lambda host, path, r: (
            fetched_at.append(trio.current_time()) or SiteResponse(200, PAGE)
        )
        expected = urls(base, "127.0.0.1", 20)
        with trio.fail_after(120):
            stats, items, errors = await run_spider(
                Pages(expected), tmp_path, nodes=specs, **SETTINGS, **{"retry.max_attempts": 1}
            )
    assert_each_once(expected, items, errors)
    assert errors == [], "a node's pushback wrote a request off"
    assert site.hits["127.0.0.1"] == 20, "the target saw each request once"
    assert min(fetched_at) >= start + 5, "sent before a node took requests again"
    refused = sum(node.pushed_back for node in lite.values())
    # Each node is left alone for its Retry-After: it sees the first wave
    # (the requests in flight when it refused) and then one try per pause.
    assert 3 <= refused <= 20 + 3 * 3, refused
    assert stats.errors_by_kind == {}
    # Each hold is a re-send (a retry in the stats), in the totals and in
    # the domain's row alike.
    assert stats.retries >= 1
    assert [(d.domain, d.retries) for d in stats.domains] == [("127.0.0.1", stats.retries)]


async def test_a_mesh_that_never_takes_a_request_ends_it_once_with_the_nodes_kind(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = FaultSite(lambda host, path, r: SiteResponse(200, PAGE))
    async with open_site_server(site.handle) as base, open_nodes(*MESH) as (specs, lite):
        start = trio.current_time()
        for node in lite.values():
            node.push_back_until = start + 10_000
        expected = urls(base, "127.0.0.1", 5)
        with trio.fail_after(600):
            _, items, errors = await run_spider(
                Pages(expected), tmp_path, nodes=specs, **SETTINGS,
                **{"retry.node_pushback_timeout": 30},
            )  # fmt: skip
        ended = trio.current_time()
    assert_each_once(expected, items, errors)
    assert items == []
    assert {e["kind"] for e in errors} == {"node_rate_limited"}
    assert all("every node pushed it back for 3" in e["reason"] for e in errors), errors
    assert site.hits["127.0.0.1"] == 0
    assert 30 <= ended - start < 60, "held for node_pushback_timeout, then written off"
    # Held, not hammered: each node sees a held request at most once per
    # Retry-After (1 s) it asked for.
    refused = sum(node.pushed_back for node in lite.values())
    assert refused <= 5 * 3 * (ended - start + 1), refused
