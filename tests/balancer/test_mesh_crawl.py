"""Crawls through a mesh of real (lite) nodes on loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from crawling import FieldsOf, Pages, run_spider
from crawlmesh import Response, open_site_server
from crawlmesh._settings import NodeSpec
from litenode import LiteNode
from sites import GeneratedSite


@asynccontextmanager
async def open_nodes(
    *nodes: tuple[str, str, float, float],
    die_after: dict[str, int] | None = None,
) -> AsyncIterator[tuple[list[NodeSpec], dict[str, LiteNode]]]:
    """Serve LiteNodes given as (name, region, weight, fail_rate)."""
    async with AsyncExitStack() as stack:
        specs, lite = [], {}
        for i, (name, region, weight, fail_rate) in enumerate(nodes):
            dies = (die_after or {}).get(name, 0)
            node = LiteNode(name, fail_rate=fail_rate, seed=i, die_after=dies)
            stack.push_async_callback(node.aclose)
            url = await stack.enter_async_context(open_site_server(node.handle))
            specs.append(NodeSpec(name=name, kind="node", url=url, region=region, weight=weight))
            lite[name] = node
        yield specs, lite


def routed(response: Response) -> dict[str, Any]:
    """A page's item: its URL, the node it came through, and its session
    (and whether that session moved to another node)."""
    return {
        "url": response.url,
        "node": response.node,
        "session": response.request.session,
        "moved": response.session_moved,
    }


def pages(base: str, n: int, fields: FieldsOf | None = None) -> Pages:
    """/p/0 .. /p/N-1, one :func:`routed` item each."""
    return Pages([f"{base}/p/{i}" for i in range(n)], item=routed, fields=fields)


MESH: dict[str, Any] = {"robots.obey": False, "concurrency_per_domain": 64, "progress_interval": 0}
"""The crawls' settings: each domain may use the whole mesh at once."""


async def test_weights_3_2_1_give_shares_within_3_points(tmp_path: Path) -> None:
    site = GeneratedSite(3000)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("a", "", 3, 0), ("b", "", 2, 0), ("c", "", 1, 0)) as (specs, _),
    ):
        stats, items, _ = await run_spider(
            pages(base, 3000), tmp_path, nodes=specs, **MESH, **{"balancer.strategy": "weighted"}
        )
    assert len(items) == 3000
    shares = Counter(i["node"] for i in items)
    for name, expected in {"a": 0.5, "b": 1 / 3, "c": 1 / 6}.items():
        assert abs(shares[name] / 3000 - expected) <= 0.03, shares
    by_name = {n.name: n for n in stats.nodes}
    assert by_name["a"].requests == shares["a"]
    assert not any(n.uneven for n in stats.nodes)


async def test_a_dead_node_loses_nothing(tmp_path: Path) -> None:
    site = GeneratedSite(600, delay=0.002)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("a", "", 1, 0), ("b", "", 1, 0), ("c", "", 1, 0), die_after={"b": 30}) as (
            specs,
            lite,
        ),
    ):
        stats, items, _ = await run_spider(pages(base, 600), tmp_path, nodes=specs, **MESH)
    assert 30 <= lite["b"].served < 30 + 64  # requests already inside b complete
    assert sorted(i["url"] for i in items) == sorted(f"{base}/p/{n}" for n in range(600))
    assert stats.errors == 0
    by_name = {n.name: n for n in stats.nodes}
    assert sum(by_name["b"].errors.values()) > 0  # b failed requests, retried elsewhere
    # The dead node is routed around at once: its breaker opens, or p2c-ewma
    # leaves it after a handful of faults (each learnt as a slow answer).
    wasted = sum(by_name["b"].errors.values())
    assert by_name["b"].breaker != "closed" or wasted <= 5, by_name["b"]


async def test_sessions_stick_to_one_node(tmp_path: Path) -> None:
    site = GeneratedSite(400)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("a", "", 1, 0), ("b", "", 1, 0), ("c", "", 1, 0)) as (specs, _),
    ):
        spider = pages(base, 400, lambda i: {"session": f"s{i % 20}"})
        stats, items, _ = await run_spider(spider, tmp_path, nodes=specs, **MESH)
    nodes_of: dict[str, set[str]] = {}
    for item in items:
        nodes_of.setdefault(item["session"], set()).add(item["node"])
    assert len(nodes_of) == 20
    assert all(len(v) == 1 for v in nodes_of.values()), nodes_of
    assert len({next(iter(v)) for v in nodes_of.values()}) == 3  # spread over the nodes
    assert stats.sessions_moved == 0
    assert stats.sessions_split == 0


async def test_geo_routing_and_fallback(tmp_path: Path) -> None:
    site = GeneratedSite(100)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(
            ("eu", "eu-west", 1, 0), ("us", "us-east", 1, 0), ("ap", "asia-pacific", 1, 0)
        ) as (specs, _),
    ):

        def odd_in_eu(i: int) -> dict[str, Any]:
            return {"region": "eu-west" if i % 2 else None}

        stats, items, _ = await run_spider(
            pages(base, 60, odd_in_eu),
            tmp_path,
            nodes=specs,
            **MESH,
            **{"balancer.default_region": "us-east"},
        )
        assert {i["node"] for i in items if int(i["url"].rsplit("/", 1)[1]) % 2} == {"eu"}
        assert {i["node"] for i in items if not int(i["url"].rsplit("/", 1)[1]) % 2} == {"us"}

        # With no eu-west node, eu-west requests fall back along the order.
        no_eu = [s for s in specs if s.name != "eu"]
        stats, items, _ = await run_spider(
            pages(base, 60, odd_in_eu),
            tmp_path,
            nodes=no_eu,
            **MESH,
            **{"balancer.default_region": "us-east", "balancer.region_order": ["asia-pacific"]},
        )
        assert {i["node"] for i in items if int(i["url"].rsplit("/", 1)[1]) % 2} == {"ap"}
        assert stats.region_fallbacks == 30


async def test_a_crawl_through_real_proxy_processes(
    tmp_path: Path, proxy_url: str, failing_proxy_url: str
) -> None:
    """Two forward-proxy processes and a direct node; one proxy answers every
    request with its own 503: those are node faults, retried elsewhere."""
    site = GeneratedSite(300)
    specs = [
        NodeSpec(name="proxy-ok", kind="proxy", url=proxy_url, weight=2),
        NodeSpec(name="proxy-bad", kind="proxy", url=failing_proxy_url, weight=1),
        NodeSpec(name="direct", weight=1),
    ]
    async with open_site_server(site.handle) as base:
        stats, items, _ = await run_spider(
            pages(base, 300), tmp_path, nodes=specs, **MESH, **{"balancer.strategy": "weighted"}
        )
    assert sorted(i["url"] for i in items) == sorted(f"{base}/p/{n}" for n in range(300))
    assert stats.errors == 0
    by_name = {n.name: n for n in stats.nodes}
    assert by_name["proxy-bad"].errors.get("proxy_error", 0) >= 1
    assert by_name["proxy-bad"].breaker == "open"  # its node breaker tripped
    assert stats.breaker_transitions.get("node:open", 0) >= 1
    served = Counter(i["node"] for i in items)
    assert served["proxy-ok"] > served["direct"] > 0
    assert served["proxy-bad"] == 0


async def test_a_session_moves_once_when_its_node_dies(tmp_path: Path) -> None:
    site = GeneratedSite(50)
    async with (
        open_site_server(site.handle) as base,
        open_nodes(("a", "", 1, 0), ("b", "", 1, 0), die_after={"a": 20, "b": 20}) as (specs, _),
    ):
        spider = pages(base, 40, lambda i: {"session": "s"})
        stats, items, _ = await run_spider(spider, tmp_path, nodes=specs, **MESH, concurrency=1)
    assert len(items) == 40
    order = [i["node"] for i in sorted(items, key=lambda i: int(i["url"].rsplit("/", 1)[1]))]
    first, second = order[0], next(n for n in order if n != order[0])
    assert order == [first] * 20 + [second] * 20  # sticky, then one move
    assert [i["moved"] for i in items].count(True) == 1
    assert stats.sessions_moved == 1
    assert stats.sessions_split == 0
