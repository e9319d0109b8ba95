"""Circuit breakers inside the balancer: per node and per (node, domain), in virtual time."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from crawlmesh import CircuitOpen, ConnectFailed, FetchTimeout, Request
from crawlmesh._balancer import DIRECT_FALLBACK, Balancer, NodesBusy
from crawlmesh._resilience import BanRules, BreakerConfig
from crawlmesh._settings import NodeSpec

CONFIG = BreakerConfig(
    consecutive_failures=3, cooldown=10.0, cooldown_max=40.0, half_open_probes=2,
    half_open_successes=2,
)  # fmt: skip


class Stub:
    async def fetch(self, request: object, options: object) -> object:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        pass


def mesh(*names: str, region: str = "", **kwargs: object) -> Balancer:
    specs = [NodeSpec(name=n, region=region) for n in names]
    return Balancer(specs, lambda s: Stub(), breakers=CONFIG, **kwargs)  # type: ignore[arg-type]


def node_fault(request: Request) -> ConnectFailed:
    return ConnectFailed("node unreachable", request=request, node_fault=True)


async def fail(b: Balancer, host: str, node: str, times: int, *, fault: bool = False) -> None:
    """Send ``times`` requests to ``host`` through ``node`` that fail."""
    request = Request(f"http://{host}/")
    for _ in range(times):
        lease = await b.acquire(
            request, host, exclude=frozenset({n.name for n in b.nodes} - {node})
        )
        assert lease.node.name == node
        if fault:
            b.release(lease, error=node_fault(request))
        else:
            b.release(lease, error=FetchTimeout("slow", kind="read_timeout"))


async def test_a_pair_breaker_takes_a_node_off_one_domain_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("a", "b")
    await fail(b, "dead.example", "a", 3)
    assert b.circuits is not None
    assert b.circuits.pairs.peek(("a", "dead.example")).state() == "open"  # type: ignore[union-attr]
    for _ in range(20):
        lease = await b.acquire(Request("http://dead.example/"), "dead.example")
        assert lease.node.name == "b"
        b.release(lease, status=200)
    picked = set()
    for _ in range(40):
        lease = await b.acquire(Request("http://other.example/"), "other.example")
        picked.add(lease.node.name)
        b.release(lease, status=200)
    assert picked == {"a", "b"}, "a still serves the other domain"


async def test_a_node_breaker_takes_the_node_out_everywhere_then_probes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("a", "b")
    await fail(b, "x.example", "a", 3, fault=True)
    for host in ("x.example", "y.example"):
        lease = await b.acquire(Request(f"http://{host}/"), host)
        assert lease.node.name == "b"
        b.release(lease, status=200)
    await trio.sleep(10.0)  # the cool-down ends: half-open, two probes at a time
    leases = []
    for _ in range(2):
        lease = await b.acquire(Request("http://y.example/"), "y.example", frozenset({"b"}))
        assert lease.node.name == "a"
        leases.append(lease)
    third = await b.acquire(Request("http://y.example/"), "y.example", frozenset({"b"}))
    assert third.node.name == "b", "a's probe slots are taken: b it is"
    b.release(third, status=200)
    for lease in leases:
        b.release(lease, status=200)
    assert b.node_stats()[0].breaker == "closed"
    assert b.health.state(b.nodes[0]) == "slow-start", "back at full weight gradually"


async def test_a_failed_probe_reopens_for_longer(autojump_clock: trio.testing.MockClock) -> None:
    b = mesh("a", "b")
    await fail(b, "x.example", "a", 3, fault=True)
    assert b.circuits is not None
    breaker = b.circuits.nodes.peek("a")
    assert breaker is not None
    assert breaker.cooldown == 10.0
    await trio.sleep(10.0)
    await fail(b, "x.example", "a", 1, fault=True)
    assert (breaker.state(), breaker.cooldown) == ("open", 20.0)
    assert b.circuits.transitions == {"node:open": 2, "node:half-open": 1}


async def test_blocked_until_holds_a_domain_no_node_can_serve(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("a", "b")
    start = trio.current_time()
    assert b.blocked_until("dead.example") == (-math.inf, False), "nothing wrong: fast path"
    await fail(b, "dead.example", "a", 3)
    assert b.blocked_until("dead.example") == (trio.current_time(), False), "b can serve it"
    await fail(b, "dead.example", "b", 3)
    assert b.blocked_until("dead.example") == (pytest.approx(start + 10.0), True)
    with pytest.raises(CircuitOpen, match=r"dead\.example"):
        await b.acquire(Request("http://dead.example/"), "dead.example")
    assert b.blocked_until("fine.example") == (-math.inf, False)
    await trio.sleep_until(start + 10.0)
    assert b.blocked_until("dead.example") == (trio.current_time(), False)


async def test_a_region_whose_nodes_are_open_falls_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    specs = [NodeSpec(name="eu", region="eu-west"), NodeSpec(name="us", region="us-east")]
    b = Balancer(specs, lambda s: Stub(), breakers=CONFIG, region_order=["us-east"])
    await fail(b, "shop.de", "eu", 3, fault=True)
    lease = await b.acquire(Request("http://shop.de/"), "shop.de")
    assert lease.node.name == "us"
    b.release(lease, status=200)
    assert b.region_fallbacks == 1


async def test_direct_fallback_serves_when_nothing_else_can(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("p1", "p2", direct_fallback=True)
    for name in ("p1", "p2"):
        await fail(b, "x.example", name, 3, fault=True)
    lease = await b.acquire(Request("http://x.example/"), "x.example")
    assert lease.node.name == DIRECT_FALLBACK
    b.release(lease, status=200)
    assert b.direct_fallbacks == 1
    direct = [n for n in b.node_stats() if n.name == DIRECT_FALLBACK]
    assert [(n.state, n.requests) for n in direct] == [("fallback", 1)]


async def test_bans_feed_the_pair_breaker(autojump_clock: trio.testing.MockClock) -> None:
    b = mesh("a", "b", bans=BanRules())
    captcha = b"<html><title>Attention Required! | Cloudflare</title>"
    for _ in range(3):
        lease = await b.acquire(Request("http://shop.example/"), "shop.example", frozenset("b"))
        ban = b.ban(200, captcha, {})
        assert ban is not None
        assert "attention required" in ban.reason
        assert ban.page
        b.release(lease, status=200, ban=ban)
    assert b.circuits is not None
    assert b.circuits.banned["a"] == 3
    assert b.node_stats()[0].bans == 3
    lease = await b.acquire(Request("http://shop.example/"), "shop.example")
    assert lease.node.name == "b", "a is banned by shop.example"
    b.release(lease, status=200)


async def test_pushback_and_content_errors_do_not_trip_breakers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("a")
    request = Request("http://x.example/")
    for _ in range(10):
        lease = await b.acquire(request, "x.example")
        b.release(lease, status=429)
        lease = await b.acquire(request, "x.example")
        b.release(lease, error=FetchTimeout("big", kind="too_large"))
        lease = await b.acquire(request, "x.example")
        b.release(lease, status=404)
    assert b.circuits is not None
    assert b.circuits.transitions == {}


async def test_a_cancelled_request_gives_its_probe_slot_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = mesh("a")
    await fail(b, "x.example", "a", 3)
    await trio.sleep(10.0)
    leases = [await b.acquire(Request("http://x.example/"), "x.example") for _ in range(2)]
    with pytest.raises(CircuitOpen):
        await b.acquire(Request("http://x.example/"), "x.example")
    b.abandon(leases[0])
    b.release(await b.acquire(Request("http://x.example/"), "x.example"), status=200)
    b.release(leases[1], status=200)
    assert b.circuits is not None
    assert b.circuits.pairs.peek(("a", "x.example")).state() == "closed"  # type: ignore[union-attr]


# -- per-node rates ------------------------------------------------------------


def rated(*specs: NodeSpec, rate: str = "1/s") -> Balancer:
    from crawlmesh._shaping import Shaper

    rules = {"*": {"rate": rate, "per_node": True}}
    return Balancer(
        list(specs), lambda s: Stub(), node_rates=Shaper(rules, per_node=True), breakers=CONFIG
    )


async def test_a_session_waits_for_its_node_under_a_per_node_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = rated(NodeSpec(name="a"), NodeSpec(name="b"))
    request = Request("http://x.example/", session="s1")
    start = trio.current_time()
    nodes = []
    for _ in range(3):  # nothing else in flight: it must not wait for a free slot
        lease = await b.acquire(request, "x.example")
        nodes.append(lease.node.name)
        b.release(lease, status=200)
    assert len(set(nodes)) == 1, "the session kept its node"
    assert trio.current_time() - start == pytest.approx(2.0), "at its node's 1/s"


async def test_a_per_node_rate_falls_back_to_other_regions_as_blocked_until_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = rated(NodeSpec(name="eu", region="eu-west"), NodeSpec(name="us", region="us-east"))
    first = await b.acquire(Request("http://shop.de/"), "shop.de")
    assert first.node.name == "eu"
    b.release(first, status=200)
    assert b.blocked_until("shop.de") == (trio.current_time(), False), "us is free"
    second = await b.acquire(Request("http://shop.de/"), "shop.de")
    assert second.node.name == "us", "not NodesBusy while blocked_until says now"
    b.release(second, status=200)
    with pytest.raises(NodesBusy):
        await b.acquire(Request("http://shop.de/"), "shop.de")
    until, by_breakers = b.blocked_until("shop.de")
    assert (until, by_breakers) == (pytest.approx(trio.current_time() + 1.0), False)


def test_an_attempt_deadline_tells_the_node_breaker_nothing() -> None:
    """A node that hangs and a target that drips both end at the attempt's
    deadline: it counts against the pair, and is no success for the node."""
    from crawlmesh import FetchTimeout
    from crawlmesh._balancer._balancer import _verdicts

    assert _verdicts(None, FetchTimeout("slow", kind="total_timeout"), None) == (None, False)
    assert _verdicts(None, FetchTimeout("slow", kind="read_timeout"), None) == (True, False)
    assert _verdicts(200, None, None) == (True, True)
