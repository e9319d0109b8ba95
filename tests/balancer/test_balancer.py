"""The Balancer's own rules, with stand-in transports (regressions from review)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing

from crawlmesh import ConnectFailed, Request
from crawlmesh._balancer import Balancer, build_balancer, reload_nodes
from crawlmesh._settings import NodeSpec, load_settings


class Stub:
    """A transport that is never asked to fetch; counts dropped session jars."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    async def fetch(self, request: object, options: object) -> object:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        pass

    def forget_session(self, session: str) -> None:
        self.forgotten.append(session)


async def test_every_waiter_for_a_full_node_is_woken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = Balancer([NodeSpec(name="a", max_connections=1)], lambda s: Stub())
    req = Request("http://example.com/")
    first = await b.acquire(req, "example.com")
    done: list[int] = []

    async def waiter(i: int) -> None:
        lease = await b.acquire(req, "example.com")
        done.append(i)
        await trio.sleep(1)
        b.release(lease, status=200)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, 1)
        nursery.start_soon(waiter, 2)
        await trio.sleep(1)
        assert done == []  # the node is full
        b.release(first, status=200)
    assert sorted(done) == [1, 2]
    assert b.nodes[0].in_flight == 0


async def test_a_node_failing_at_once_does_not_look_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = Balancer(
        [NodeSpec(name=n) for n in "abc"],
        lambda s: Stub(),
        rng=random.Random(1),
    )
    req = Request("http://x.com/")
    picks: Counter[str] = Counter()
    for _ in range(1000):
        lease = await b.acquire(req, "x.com")
        picks[lease.node.name] += 1
        if lease.node.name in ("a", "b"):
            await trio.sleep(0.001)  # refused at once
            b.release(lease, error=ConnectFailed("refused", request=req, node_fault=True))
        else:
            await trio.sleep(0.1)
            b.release(lease, status=200)
    assert picks["c"] > 600, picks  # the strategy alone; breakers would take a, b out


async def test_region_fallbacks_are_counted_once_per_request() -> None:
    b = Balancer([NodeSpec(name="us", region="us-east", max_connections=1)], lambda s: Stub())
    req = Request("http://example.de/")
    first = await b.acquire(req, "example.de")
    async with trio.open_nursery() as nursery:

        async def second() -> None:
            lease = await b.acquire(req, "example.de")
            b.release(lease, status=200)

        nursery.start_soon(second)
        await trio.sleep(0.01)
        b.release(first, status=200)
    assert b.region_fallbacks == 2


async def test_a_session_keeps_its_node_across_regions() -> None:
    b = Balancer(
        [NodeSpec(name="eu", region="eu-west"), NodeSpec(name="us", region="us-east")],
        lambda s: Stub(),
    )
    seen = set()
    for i in range(6):
        host = "shop.de" if i % 2 == 0 else "login.example.com"
        node, moved, _ = b.choose(Request(f"http://{host}/", session="user-1"), host)
        seen.add(node.name)
        assert not moved
    assert seen == {"eu"}  # placed by its first request's region, then sticky


async def test_a_reload_that_changes_a_weight_moves_no_session() -> None:
    stubs: dict[str, Stub] = {}

    def make(spec: NodeSpec) -> Stub:
        stubs[spec.name] = Stub()
        return stubs[spec.name]

    b = Balancer([NodeSpec(name=n) for n in "abc"], make, strategy="round-robin")
    where = {}
    for i in range(300):
        r = Request(f"http://x.com/{i}", session=f"s{i}")
        where[i] = b.choose(r, "x.com")[0].name
    transports = dict(stubs)
    b.set_nodes(
        [NodeSpec(name="a", weight=0.5, tags=["x"]), NodeSpec(name="b"), NodeSpec(name="c")]
    )
    for i in range(300):
        r = Request(f"http://x.com/{i}", session=f"s{i}")
        assert b.choose(r, "x.com")[0].name == where[i]
    assert stubs == transports  # no transport rebuilt: cookie jars kept
    assert b.sessions_moved == 0


async def test_a_reload_whose_transport_cannot_be_built_keeps_the_mesh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    f = tmp_path / "nodes.toml"
    f.write_text("[[nodes]]\nname = 'a'\n")
    settings = load_settings([("t", {"balancer.nodes_file": str(f)})])
    b = build_balancer(settings)
    f.write_text(
        "[[nodes]]\nname = 'a'\n\n[[nodes]]\nname = 'api'\nkind = 'api'\n"
        "template = 'https://api.example.invalid/?key={env:NOPE_KEY}&url={url}'\n"
    )
    assert not reload_nodes(b, settings)
    assert [n.name for n in b.nodes] == ["a"]
    await b.aclose()


async def test_node_stats_top_lists_the_busiest_with_shares_of_the_whole_mesh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    weights = {"a": 1, "b": 5, "c": 3, "d": 1}
    specs = [NodeSpec(name=n, weight=w) for n, w in weights.items()]
    b = Balancer(specs, lambda s: Stub(), strategy="weighted")
    for _ in range(10):  # smooth weighted round-robin: exactly the weights
        lease = await b.acquire(Request("http://x.com/"), "x.com")
        await trio.sleep(0.01)
        b.release(lease, status=200)
    # Without top: every node, in mesh order.
    assert [(n.name, n.requests) for n in b.node_stats()] == list(weights.items())
    assert b.node_count == 4
    top = b.node_stats(top=2)
    assert [(n.name, n.requests, n.share) for n in top] == [("b", 5, 0.5), ("c", 3, 0.3)]
    assert top[0].p50_ms == pytest.approx(10.0)
    assert [n.name for n in b.node_stats(top=3)] == ["b", "c", "a"]  # a tie: mesh order


class Plain:
    """A transport without the optional session part."""

    async def fetch(self, request: object, options: object) -> object:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        pass


async def test_a_moved_session_is_forgotten_on_its_old_node() -> None:
    stubs = {"a": Stub(), "b": Stub()}
    b = Balancer(
        [NodeSpec(name="a"), NodeSpec(name="b")],
        lambda s: stubs[s.name],  # type: ignore[arg-type,return-value]
        rng=random.Random(1),
    )
    req = Request("http://example.com/", session="s1")
    first, _, _ = b.choose(req, "example.com")
    other = "b" if first.name == "a" else "a"
    moved_to, moved, _ = b.choose(req, "example.com", exclude=frozenset({first.name}))
    assert (moved_to.name, moved) == (other, True)
    assert stubs[first.name].forgotten == ["s1"]
    assert stubs[other].forgotten == []


async def test_a_transport_that_keeps_no_sessions_needs_no_forget_session() -> None:
    b = Balancer(
        [NodeSpec(name="a"), NodeSpec(name="b")],
        lambda s: Plain(),  # type: ignore[arg-type,return-value]
    )
    req = Request("http://example.com/", session="s1")
    first, _, _ = b.choose(req, "example.com")
    moved_to, moved, _ = b.choose(req, "example.com", exclude=frozenset({first.name}))
    assert moved
    assert moved_to.name != first.name
    assert b.sessions_moved == 1
