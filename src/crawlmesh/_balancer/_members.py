"""Membership: the mesh's nodes, their transports and their health tracker.

A node whose egress is unchanged keeps its transport (and its sessions'
cookie jars) across a reload; a removed node's transport closes once its
in-flight requests are done. The direct fallback node joins only when
first needed.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence

from .._exceptions import CrawlmeshError, SettingsError
from .._transport import Transport, session_forgetter
from .._util._tally import NodeTally
from ._health import HealthTracker
from ._strategies import Strategy
from ._types import NodeSpec, NodeState

__all__ = ["DIRECT_FALLBACK", "Members", "MeshNode", "TransportFactory"]

_RESERVOIR = 2048
# The node that serves requests directly when nothing else can (direct_fallback).
DIRECT_FALLBACK = "direct-fallback"

TransportFactory = Callable[[NodeSpec], Transport]


class MeshNode:
    """One node of the mesh: its state, transport and what it has seen."""

    __slots__ = (
        "errors",
        "forget_session",
        "latencies",
        "requests",
        "seen",
        "state",
        "tally",
        "transport",
    )

    def __init__(self, state: NodeState, transport: Transport) -> None:
        self.state = state
        self.transport = transport
        # Drops a session's state on the node (a no-op where none is kept).
        self.forget_session = session_forgetter(transport)
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.seen = 0
        self.tally = NodeTally()  # for the metrics

    def sample(self, latency: float, rng: random.Random) -> None:
        # Reservoir sampling: bounded memory, unbiased percentiles.
        self.seen += 1
        if len(self.latencies) < _RESERVOIR:
            self.latencies.append(latency)
        else:
            j = rng.randrange(self.seen)
            if j < _RESERVOIR:
                self.latencies[j] = latency


def _same_egress(a: NodeSpec, b: NodeSpec) -> bool:
    # What the transport is built from; other fields can change in place.
    return (a.kind, a.url, a.template) == (b.kind, b.url, b.template)


class Members:
    """The nodes in force, the ones a reload removed, and the direct fallback.

    Args:
        make_transport: builds a node's transport from its spec.
        strategy: told to forget a node that leaves.
        health: tracks the nodes in force (replaced by :meth:`reset`).
    """

    __slots__ = (
        "_ids",
        "_make_transport",
        "_retired",
        "_strategy",
        "direct",
        "health",
        "nodes",
        "regions",
        "version",
    )

    def __init__(
        self, make_transport: TransportFactory, strategy: Strategy, health: HealthTracker
    ) -> None:
        self._make_transport = make_transport
        self._strategy = strategy
        self.health = health
        self.nodes: dict[str, MeshNode] = {}
        self.direct: MeshNode | None = None
        self.regions: list[str] = []
        self.version = 0  # bumped by each set_nodes()
        self._ids = itertools.count()
        self._retired: list[MeshNode] = []

    def states(self) -> list[NodeState]:
        return [n.state for n in self.nodes.values()]

    def everyone(self) -> list[MeshNode]:
        """The nodes in force, then the direct fallback once it has joined."""
        direct = self.direct
        return [*self.nodes.values(), *([direct] if direct is not None else [])]

    def named(self, name: str) -> MeshNode | None:
        """The node in force called ``name``, or the direct fallback."""
        node = self.nodes.get(name)
        if node is None and name == DIRECT_FALLBACK:
            node = self.direct
        return node

    def direct_node(self) -> MeshNode:
        """The direct fallback node, built on first use."""
        if self.direct is None:
            spec = NodeSpec(name=DIRECT_FALLBACK, kind="direct")
            self.direct = MeshNode(NodeState(spec, next(self._ids)), self._make_transport(spec))
        return self.direct

    def set_nodes(self, specs: Sequence[NodeSpec]) -> None:
        """Replace the mesh (see :meth:`Balancer.set_nodes`)."""
        old = self.nodes
        new: dict[str, MeshNode] = {}
        try:
            for spec in specs:
                kept = old.get(spec.name)
                if kept is not None and _same_egress(kept.state.spec, spec):
                    state = kept.state
                    if state.spec.weight != spec.weight:
                        # Keep a slow start's progress, at the new weight.
                        state.effective_weight *= spec.weight / state.spec.weight
                    state.spec = spec
                    new[spec.name] = kept
                    continue
                # Indexes identify nodes to the strategy and rings: never reused.
                node = MeshNode(NodeState(spec, next(self._ids)), self._make_transport(spec))
                if kept is not None:
                    node.requests, node.errors = kept.requests, kept.errors
                    node.tally = kept.tally
                new[spec.name] = node
        except CrawlmeshError:
            raise
        except Exception as exc:
            raise SettingsError(f"cannot set up the node mesh: {exc}") from exc
        for name, node in old.items():
            if new.get(name) is not node:
                self._retired.append(node)
                self._strategy.forget(node.state)
        self.nodes = new
        self.regions = sorted({s.region for s in specs if s.region})
        self.health.set_nodes([n.state for n in new.values()])
        self.version += 1

    def reset(self, specs: Sequence[NodeSpec]) -> None:
        """Start over with ``specs``: no slow start, no history."""
        self._retired.extend(self.nodes.values())
        self.nodes = {}
        on_down = self.health.on_down
        self.health = HealthTracker(self.health.config)
        self.health.on_down = on_down
        self.set_nodes(specs)

    async def aclose(self) -> None:
        direct = [self.direct] if self.direct is not None else []
        for node in [*self.nodes.values(), *self._retired, *direct]:
            await node.transport.aclose()
        self._retired.clear()

    async def close_retired(self) -> None:
        """Close transports of removed nodes once nothing is in flight on them."""
        idle = [n for n in self._retired if n.state.in_flight == 0]
        self._retired = [n for n in self._retired if n.state.in_flight > 0]
        for node in idle:
            await node.transport.aclose()
