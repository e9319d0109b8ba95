"""A custom transport handed to the engine is the one direct node of a mesh."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.lowlevel
import trio.testing

from crawling import Pages, run_engine
from crawlmesh import FetchOptions, Request, Response
from crawlmesh._exceptions import FetchError


class Canned:
    """Answers every URL from memory."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.closed = False

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        await trio.lowlevel.checkpoint()
        self.fetched.append(request.url)
        body = b'<a href="/b">b</a>' if request.url.endswith("/a") else b""
        return Response(request.url, 200, {}, body, request)

    async def aclose(self) -> None:
        self.closed = True


START = ["http://example.test/a"]


async def test_a_custom_transport_crawls_as_a_one_node_mesh(tmp_path: Path) -> None:
    transport = Canned()
    settings = {"robots.obey": False, "retry.max_attempts": 1, "progress_interval": 0}
    crawl, engine = await run_engine(
        Pages(START, follow=True, dont_filter=True), tmp_path, settings, transport=transport
    )
    stats = crawl.stats
    assert engine.balancer is not None
    assert [n.name for n in engine.balancer.nodes] == ["direct"]
    assert sorted(transport.fetched) == ["http://example.test/a", "http://example.test/b"]
    assert [(n.name, n.kind, n.requests) for n in stats.nodes] == [("direct", "direct", 2)]
    assert transport.closed


class Refusing:
    """Fails every fetch as its node's own fault (a refused connection)."""

    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        await trio.lowlevel.checkpoint()
        self.fetches += 1
        raise FetchError("refused", request=request, kind="connection_error", node_fault=True)

    async def aclose(self) -> None:
        pass


async def test_a_custom_transport_whose_node_fails_is_held_then_written_off(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # As any mesh whose every node is down: the node's breaker holds the
    # domain, probes it, and after breaker.park_timeout the request is
    # written off (nothing hangs, nothing is lost).
    transport = Refusing()
    settings = {
        "robots.obey": False,
        "retry.max_attempts": 2,
        "progress_interval": 0,
        "breaker.park_timeout": 60,
    }
    started = trio.current_time()
    with trio.fail_after(600):
        (stats, _, failed), _ = await run_engine(
            Pages(START, follow=True, dont_filter=True), tmp_path, settings, transport=transport
        )
    assert [(f["url"], f["kind"]) for f in failed] == [("http://example.test/a", "circuit_open")]
    assert "for 60 s" in failed[0]["reason"]
    assert 60 <= trio.current_time() - started < 120
    assert transport.fetches >= 2  # the node was probed again before the write-off
    assert stats.items == 0
