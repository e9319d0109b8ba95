"""Two workers' balancers share sessions and breakers through a real
redis-server (each balancer with its own RedisBackend, in one process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from crawlmesh import ConnectFailed, Request, Spider
from crawlmesh._balancer import Balancer, ProbeResult
from crawlmesh._observe import StatsCollector
from crawlmesh._resilience import BreakerConfig
from crawlmesh._settings import BackendSettings, NodeSpec
from crawlmesh._state._redis import RedisBackend
from distributed.redis_server import RedisServer

SESSIONS = [f"s{n}" for n in range(40)]


class Stub:
    async def fetch(self, request: object, options: object) -> object:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        pass


class Link:
    """The engine's side of the backend, reduced to its balancer."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer

    def feed(self, domain: str, request: Request) -> None:
        raise AssertionError("nothing is queued in these tests")

    def seed(self) -> None:
        pass

    def wake(self) -> None:
        pass

    def pause(self, domain: str, seconds: float) -> None:
        pass

    def breaker(self, node: str, domain: str | None, seconds: float) -> None:
        self.balancer.apply_shared_breaker(node, domain, seconds)

    def stop(self, reason: str) -> None:
        raise AssertionError(f"stopped: {reason}")

    def backlog(self) -> int:
        return 10**6  # claims nothing


class Shop(Spider):
    name = "mesh-share"


def balancer(weights: tuple[float, ...]) -> Balancer:
    specs = [NodeSpec(name=f"n{i}", weight=w) for i, w in enumerate(weights)]
    return Balancer(specs, lambda s: Stub(), breakers=BreakerConfig())


@asynccontextmanager
async def worker(redis: RedisServer, b: Balancer) -> AsyncIterator[RedisBackend]:
    """A RedisBackend serving ``b`` and syncing in the background."""
    backend = RedisBackend(BackendSettings(url=redis.url), Shop(), concurrency=8)
    b.share = backend
    stats = StatsCollector()
    async with backend.connect(Link(b), stats), trio.open_nursery() as nursery:
        nursery.start_soon(backend.run)
        yield backend
        nursery.cancel_scope.cancel()


async def node_for(b: Balancer, session: str) -> str:
    lease = await b.acquire(Request(f"http://shop.test/{session}", session=session), "shop.test")
    b.release(lease, status=200)
    return lease.node.name


async def placements(b: Balancer) -> dict[str, str]:
    return {s: await node_for(b, s) for s in SESSIONS}


async def test_every_worker_sends_a_session_to_one_node(redis: RedisServer) -> None:
    # Two workers whose meshes weigh the nodes differently place sessions
    # differently on their own...
    alone = [await placements(balancer(w)) for w in ((1, 1, 1), (1, 1, 8))]
    assert alone[0] != alone[1]
    # ...and the same way when they share a Redis: the first to place a
    # session decides, in whichever order the sessions come.
    a, b = balancer((1, 1, 1)), balancer((1, 1, 8))
    async with worker(redis, a), worker(redis, b):
        first = {s: await node_for(a, s) for s in SESSIONS[::2]}
        first |= {s: await node_for(b, s) for s in SESSIONS[1::2]}
        for s in SESSIONS:
            assert await node_for(a, s) == await node_for(b, s) == first[s], s


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 (another task changes it, no event to wait on)
            await trio.sleep(0.01)


async def test_a_breaker_that_opens_in_one_worker_opens_in_every_worker(
    redis: RedisServer,
) -> None:
    a, b = balancer((1, 1)), balancer((1, 1))
    async with AsyncExitStack() as stack:
        for each in (a, b):
            await stack.enter_async_context(worker(redis, each))
        request = Request("http://shop.test/")
        for _ in range(BreakerConfig().consecutive_failures):
            lease = await a.acquire(request, "shop.test", exclude=frozenset({"n1"}))
            assert lease.node.name == "n0"
            failure = ConnectFailed("refused", request=request, node_fault=True)
            a.release(lease, error=failure)
        circuits: Any = a.circuits
        assert circuits.node_out("n0")
        # Worker b saw none of it, yet takes n0 out within a sync or two.
        other: Any = b.circuits
        await wait_for(lambda: other.node_out("n0"))
        assert other.transitions["node:open"] == 1
        picks = {(await b.acquire(request, "shop.test")).node.name for _ in range(20)}
        assert picks == {"n1"}


async def test_a_node_one_worker_finds_down_is_out_for_every_worker(redis: RedisServer) -> None:
    a, b = balancer((1, 1)), balancer((1, 1))
    async with worker(redis, a), worker(redis, b):
        n0 = next(n for n in a.nodes if n.name == "n0")
        for _ in range(a.health.config.fails):
            a.health.record_probe(n0, ProbeResult(ok=False, latency=0.01, detail="refused"))
        assert [n.name for n in a.health.eligible()] == ["n1"]
        other: Any = b.circuits
        await wait_for(lambda: other.node_out("n0"))  # its own checks never failed
        assert [n.name for n in b.health.eligible()] == ["n0", "n1"]
        request = Request("http://shop.test/")
        picks = {(await b.acquire(request, "shop.test")).node.name for _ in range(20)}
        assert picks == {"n1"}
