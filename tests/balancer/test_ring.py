"""Session affinity: consistent hashing with bounded loads and a stick table."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import NodeSpec
from crawlmesh._balancer import AffinityRing, NodeState

EPS = 0.25


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_nodes(*weights: float) -> list[NodeState]:
    return [NodeState(NodeSpec(name=f"node-{i}", weight=w), i) for i, w in enumerate(weights)]


def make_ring(
    nodes: list[NodeState], clock: FakeClock | None = None, *, ttl: float = 600.0
) -> AffinityRing:
    ring = AffinityRing(eps=EPS, ttl=ttl, now=clock or FakeClock())
    ring.set_nodes(nodes)
    return ring


def cap(node: NodeState, nodes: list[NodeState], live: int) -> int:
    total = sum(n.spec.weight for n in nodes)
    return math.ceil((1 + EPS) * live * node.spec.weight / total)


def placements(ring: AffinityRing, sessions: list[str]) -> dict[str, str]:
    found = {s: ring.lookup(s) for s in sessions}
    return {s: node.name for s, node in found.items() if node is not None}


def test_same_session_same_node() -> None:
    ring = make_ring(make_nodes(1, 1, 1))
    first = {f"s{i}": ring.assign(f"s{i}") for i in range(200)}
    assert len({node.name for node in first.values()}) == 3  # spread, not one node
    assert all(ring.assign(s) is node for s, node in first.items())
    assert all(ring.lookup(s) is node for s, node in first.items())


def test_placement_is_stable_across_rings() -> None:
    # blake2b, not hash(): another process, or a restart, places alike.
    nodes = make_nodes(1, 2, 1, 3)
    one, two = make_ring(nodes), make_ring(list(reversed(nodes)))
    sessions = [f"user-{i}" for i in range(300)]
    assert [one.assign(s).index for s in sessions] == [two.assign(s).index for s in sessions]


@given(
    weights=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    ops=st.lists(st.integers(0, 60), min_size=1, max_size=300),
)
def test_every_placement_is_within_the_bound(weights: list[int], ops: list[int]) -> None:
    # ops: assign session k, or (for k >= 50) release a random earlier one.
    nodes = make_nodes(*weights)
    ring = make_ring(nodes)
    live: list[str] = []
    for step, k in enumerate(ops):
        if k >= 50 and live:
            ring.release(live.pop(k % len(live)))
            continue
        session = f"s{step}"
        node = ring.assign(session)
        live.append(session)
        assert ring.loads()[node.name] <= cap(node, nodes, len(live))
        assert sum(ring.loads().values()) == len(live)


@given(
    weights=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    count=st.integers(1, 400),
)
def test_no_node_above_the_bound_without_releases(weights: list[int], count: int) -> None:
    nodes = make_nodes(*weights)
    ring = make_ring(nodes)
    for i in range(count):
        ring.assign(f"s{i}")
    loads = ring.loads()
    for node in nodes:
        assert loads[node.name] <= cap(node, nodes, count)


def test_weights_set_session_shares() -> None:
    nodes = make_nodes(1, 2, 3)
    ring = make_ring(nodes)
    for i in range(6000):
        ring.assign(f"s{i}")
    loads = ring.loads()
    for node in nodes:
        fair = 6000 * node.spec.weight / 6
        assert 0.85 * fair <= loads[node.name] <= (1 + EPS) * fair


def test_adding_a_node_moves_nothing_until_rebalance() -> None:
    nodes = make_nodes(1, 1, 1, 1)
    ring = make_ring(nodes[:3])
    sessions = [f"s{i}" for i in range(3000)]
    for s in sessions:
        ring.assign(s)
    before = placements(ring, sessions)
    ring.set_nodes(nodes)
    assert ring.moved == 0
    assert placements(ring, sessions) == before
    # The bound for 3,000 sessions on 4 nodes is lower than some loads now.
    excess = sum(max(0, n - cap(nodes[0], nodes, 3000)) for n in ring.loads().values())
    assert excess > 0
    moved = ring.rebalance()
    assert moved == excess == ring.moved  # the fewest moves that restore the bound
    assert moved <= 3000 / 4  # consistent hashing would move ~1/4
    after = placements(ring, sessions)
    assert sum(after[s] != before[s] for s in sessions) == moved
    assert all(n <= cap(nodes[0], nodes, 3000) for n in ring.loads().values())


def test_new_node_takes_new_sessions() -> None:
    nodes = make_nodes(1, 1, 1, 1)
    ring = make_ring(nodes[:3])
    for i in range(3000):
        ring.assign(f"old{i}")
    ring.set_nodes(nodes)
    new = [ring.assign(f"new{i}").name for i in range(1000)]
    assert new.count("node-3") >= 1000 / 4
    assert ring.loads()["node-3"] <= cap(nodes[3], nodes, 4000)


def test_removing_a_node_moves_only_its_sessions() -> None:
    nodes = make_nodes(1, 1, 1, 1)
    ring = make_ring(nodes)
    sessions = [f"s{i}" for i in range(3000)]
    for s in sessions:
        ring.assign(s)
    before = placements(ring, sessions)
    on_gone = [s for s in sessions if before[s] == "node-2"]
    ring.remove_node(nodes[2])
    after = placements(ring, sessions)
    assert set(after) == set(sessions)  # none lost
    assert ring.moved == len(on_gone)
    assert all(after[s] == before[s] for s in sessions if before[s] != "node-2")
    assert all(after[s] != "node-2" for s in on_gone)
    survivors = [n for n in nodes if n is not nodes[2]]
    assert "node-2" not in ring.loads()
    assert all(n <= cap(survivors[0], survivors, 3000) for n in ring.loads().values())
    # The orphans spread, instead of all going to the next node on the ring.
    assert len({after[s] for s in on_gone}) == 3


@given(count=st.integers(0, 300), gone=st.integers(0, 4))
def test_removal_property(count: int, gone: int) -> None:
    nodes = make_nodes(1, 2, 1, 3, 1)
    ring = make_ring(nodes)
    sessions = [f"s{i}" for i in range(count)]
    for s in sessions:
        ring.assign(s)
    before = placements(ring, sessions)
    ring.set_nodes([n for n in nodes if n.index != gone])
    after = placements(ring, sessions)
    name = nodes[gone].name
    assert {s for s in sessions if after[s] != before[s]} == {
        s for s in sessions if before[s] == name
    }


def test_rebalance_after_releases() -> None:
    nodes = make_nodes(1, 1, 1)
    ring = make_ring(nodes)
    owners = {f"s{i}": ring.assign(f"s{i}").name for i in range(300)}
    for s, name in owners.items():
        if name != "node-0":
            ring.release(s)
    live = ring.loads()["node-0"]
    assert sum(ring.loads().values()) == live
    # Releases move nothing: node-0 keeps all, far above its bound.
    assert live > cap(nodes[0], nodes, live)
    assert ring.rebalance() == live - cap(nodes[0], nodes, live)
    assert all(n <= cap(nodes[0], nodes, live) for n in ring.loads().values())


def test_release() -> None:
    ring = make_ring(make_nodes(1, 1))
    node = ring.assign("s")
    assert ring.loads()[node.name] == 1
    ring.release("s")
    ring.release("s")  # not live: ignored
    ring.release("never")
    assert ring.lookup("s") is None
    assert sum(ring.loads().values()) == 0


def test_idle_sessions_expire() -> None:
    clock = FakeClock()
    ring = make_ring(make_nodes(1, 1, 1), clock, ttl=60.0)
    node = ring.assign("a")
    ring.assign("b")
    clock.t = 59.0
    assert ring.lookup("a") is node  # refreshes a, not b
    clock.t = 60.0
    assert ring.lookup("b") is None  # 60 s idle
    clock.t = 118.0
    assert ring.assign("a") is node  # 59 s idle: still live, refreshed again
    assert sum(ring.loads().values()) == 1
    clock.t = 177.0
    assert ring.lookup("a") is node  # 59 s after the assign
    clock.t = 237.0
    assert ring.lookup("a") is None
    assert sum(ring.loads().values()) == 0


async def test_expiry_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    ring = AffinityRing(ttl=600.0)  # reads trio.current_time
    ring.set_nodes(make_nodes(1, 1))
    ring.assign("s")
    await trio.sleep(599)
    assert ring.lookup("s") is not None
    await trio.sleep(600)
    assert ring.lookup("s") is None


def test_empty_ring() -> None:
    ring = make_ring([])
    with pytest.raises(LookupError):
        ring.assign("s")
    assert ring.lookup("s") is None
    ring.set_nodes(make_nodes(1))
    ring.assign("s")
    ring.set_nodes([])  # nowhere to go: sessions end
    assert ring.lookup("s") is None
    assert ring.loads() == {}


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="eps > 0"):
        AffinityRing(eps=0)
    with pytest.raises(ValueError, match="ttl > 0"):
        AffinityRing(ttl=-1)


def test_pin_moves_a_session_and_keeps_the_loads_right() -> None:
    from crawlmesh import NodeSpec
    from crawlmesh._balancer import AffinityRing, NodeState

    nodes = [NodeState(NodeSpec(name=f"n{i}"), i) for i in range(3)]
    ring = AffinityRing(now=lambda: 0.0)
    ring.set_nodes(nodes)
    first = ring.assign("s")
    other = next(n for n in nodes if n is not first)
    ring.pin("s", other)
    assert ring.assign("s") is other
    assert ring.loads()[first.name] == 0
    assert ring.loads()[other.name] == 1
