"""Cost of the balancer's pure algorithms: one strategy pick, one affinity call.

Run from the repository root::

    .venv/bin/python bench/bench_balancer.py

Everything runs inside ``trio.run`` so the strategies and the ring read the
real ``trio.current_time``, as in a crawl. Each figure is the best of three
timed runs of many calls (``time.perf_counter``), in microseconds per call.

Targets: ``p2c-ewma`` pick <= 5 us and flat across mesh sizes; affinity
lookup <= 10 us at 10,000 nodes.
"""

from __future__ import annotations

import random
import time

import trio
from _timing import per_call_us  # bench/ is on sys.path when run as a script

from crawlmesh import NodeSpec
from crawlmesh._balancer import STRATEGIES, AffinityRing, NodeState, Strategy, make_strategy

SIZES = (3, 100, 10_000)
DOMAINS = [f"site{i}.example" for i in range(5)]
SESSIONS = 100_000


def make_mesh(n: int, rng: random.Random) -> list[NodeState]:
    nodes = [
        NodeState(NodeSpec(name=f"node-{i}", weight=float(rng.choice((1, 1, 2, 3)))), i)
        for i in range(n)
    ]
    for node in nodes:
        node.in_flight = rng.randrange(8)
    return nodes


def time_pick(strategy: Strategy, nodes: list[NodeState]) -> float:
    def calls(k: int) -> None:
        pick = strategy.pick
        for i in range(k):
            pick(nodes, DOMAINS[i % 5])

    return per_call_us(calls)


def time_observe(strategy: Strategy, nodes: list[NodeState]) -> float:
    def calls(k: int) -> None:
        observe, n = strategy.observe, len(nodes)
        for i in range(k):
            observe(nodes[i % n], DOMAINS[i % 5], 0.2, penalty=i % 50 == 0)

    return per_call_us(calls)


def bench_picks() -> None:
    rng = random.Random(1)
    print(f"{'pick, us/call':<16}" + "".join(f"{n:>12,}" for n in SIZES))
    observe_row = []
    for name in STRATEGIES:
        row = []
        for n in SIZES:
            nodes = make_mesh(n, rng)
            strategy = make_strategy(name, rng=random.Random(2))
            # Every (node, domain) has an estimate, as in a crawl that has run a while.
            for node in nodes:
                for domain in DOMAINS[:5]:
                    strategy.observe(node, domain, rng.uniform(0.05, 2.0))
            row.append(time_pick(strategy, nodes))
            if name == "p2c-ewma":
                observe_row.append(time_observe(strategy, nodes))
        print(f"{name:<16}" + "".join(f"{us:>12.2f}" for us in row))
    print(f"{'(p2c observe)':<16}" + "".join(f"{us:>12.2f}" for us in observe_row))


def bench_affinity() -> None:
    rng = random.Random(3)
    sessions = [f"session-{i}" for i in range(SESSIONS)]
    print()
    print(f"{'affinity':<16}" + "".join(f"{n:>12,}" for n in SIZES))
    rows: dict[str, list[str]] = {
        "set_nodes, ms": [],
        "remove 1, ms": [],
        "assign new, us": [],
        "assign old, us": [],
        "lookup, us": [],
    }
    for n in SIZES:
        nodes = make_mesh(n, rng)
        ring = AffinityRing()
        start = time.perf_counter()
        ring.set_nodes(nodes)
        rows["set_nodes, ms"].append(f"{(time.perf_counter() - start) * 1e3:.1f}")
        # Placing: each session is new, SESSIONS live at the end.
        start = time.perf_counter()
        for s in sessions:
            ring.assign(s)
        rows["assign new, us"].append(f"{(time.perf_counter() - start) / SESSIONS * 1e6:.2f}")

        def sticky(k: int, ring: AffinityRing = ring) -> None:
            assign = ring.assign
            for i in range(k):
                assign(sessions[i % SESSIONS])

        def lookup(k: int, ring: AffinityRing = ring) -> None:
            find = ring.lookup
            for i in range(k):
                find(sessions[i % SESSIONS])

        rows["assign old, us"].append(f"{per_call_us(sticky):.2f}")
        rows["lookup, us"].append(f"{per_call_us(lookup):.2f}")
        start = time.perf_counter()
        ring.remove_node(nodes[0])  # and places its sessions again
        rows["remove 1, ms"].append(f"{(time.perf_counter() - start) * 1e3:.1f}")
    for label, cells in rows.items():
        print(f"{label:<16}" + "".join(f"{cell:>12}" for cell in cells))


async def main() -> None:
    bench_picks()
    bench_affinity()


if __name__ == "__main__":
    trio.run(main)
