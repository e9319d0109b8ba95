"""The node transport against a real (lite) node over loopback."""

from __future__ import annotations

import pytest

from crawlmesh import FetchError, FetchOptions, NodeTransport, Request, open_site_server
from crawlmesh._transport import NodeFault
from litenode import LiteNode
from sites import HostileSite

OPTS = FetchOptions(read_timeout=2.0, max_response_size=1024 * 1024)


async def test_fetch_through_a_node(hostile_url: str) -> None:
    node = LiteNode("n1")
    async with open_site_server(node.handle) as base:
        t = NodeTransport(base)
        try:
            r = await t.fetch(Request(hostile_url + "/chain/2"), OPTS)
            assert r.status == 200
            assert r.url == hostile_url + "/chain/0"
            assert r.redirects == (hostile_url + "/chain/2", hostile_url + "/chain/1")
            assert b"end of chain" in r.body
            missing = await t.fetch(Request(hostile_url + "/nope"), OPTS)
            assert missing.status == 404  # the target's status, not a node error
            health = await t.check(2.0)
            assert health.status == "healthy"
        finally:
            await t.aclose()
            await node.aclose()
    assert node.served == 2


async def test_target_failures_are_not_node_faults(hostile_url: str, hostile: HostileSite) -> None:
    node = LiteNode("n1")
    async with open_site_server(node.handle) as base:
        t = NodeTransport(base)
        try:
            with pytest.raises(FetchError) as info:
                await t.fetch(Request(hostile_url + "/huge"), OPTS)
            assert info.value.kind == "too_large"
            assert not getattr(info.value, "node_fault", False)
        finally:
            await t.aclose()
            await node.aclose()


async def test_node_failures_are_node_faults(hostile_url: str) -> None:
    node = LiteNode("n1", fail_rate=1.0)
    async with open_site_server(node.handle) as base:
        t = NodeTransport(base)
        try:
            with pytest.raises(NodeFault) as info:
                await t.fetch(Request(hostile_url + "/ok"), OPTS)
            assert info.value.kind == "node_overloaded"
            node.up = False
            with pytest.raises(NodeFault):
                await t.fetch(Request(hostile_url + "/ok"), OPTS)
        finally:
            await t.aclose()
            await node.aclose()
    # A node that is not there at all.
    t = NodeTransport(base)
    with pytest.raises(NodeFault, match="node unreachable"):
        await t.fetch(Request(hostile_url + "/ok"), OPTS)
    await t.aclose()


async def test_a_health_answer_that_is_an_error_fails_the_check() -> None:
    import trio

    from crawlmesh import SiteRequest, SiteResponse

    async def handler(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        if request.target == "/health":
            return SiteResponse(503, b'{"error": {"code": "overloaded"}}')
        return SiteResponse(200, b'{"cpu_usage": 1.0}')  # no status: not a health record

    async with open_site_server(handler) as base:
        t = NodeTransport(base)
        try:
            with pytest.raises(NodeFault, match="HTTP 503"):
                await t.check(2.0)
        finally:
            await t.aclose()
