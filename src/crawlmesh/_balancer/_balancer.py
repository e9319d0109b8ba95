"""The balancer: assigns each request a node and learns from each response.

Selection runs the policies in a fixed order: health (only eligible nodes),
geo (the request's region, then the fallback order), affinity (a session
stays on its node), strategy (among what is left). Candidate lists are
rebuilt only when eligibility or the mesh changes, so one selection costs
O(1) for p2c-ewma whatever the mesh size.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

import msgspec
import structlog
import trio

from .._exceptions import FetchError
from .._request import Request
from .._transport._base import Transport, is_node_fault
from ._geo import DEFAULT_GEO_MAP, GeoRouter
from ._health import HealthConfig, HealthTracker
from ._ring import AffinityRing
from ._strategies import Strategy, make_strategy
from ._types import NodeSpec, NodeState

__all__ = ["Balancer", "Lease", "NodeStats", "is_node_fault"]

log = structlog.get_logger("crawlmesh.balancer")

# Statuses from a target that say "slow down": a latency penalty for the
# (node, domain) pair, so p2c-ewma sends that domain elsewhere.
_PUSHBACK = frozenset({429, 503})
_RESERVOIR = 2048
_MAX_SESSIONS = 100_000


class NodeStats(msgspec.Struct, frozen=True):
    """Per-node figures for the final stats."""

    name: str
    kind: str
    region: str
    weight: float
    state: str
    requests: int
    errors: dict[str, int]
    share: float
    """This node's share of all requests sent through the mesh."""
    expected_share: float
    """Its weight's share of the mesh's total weight."""
    p50_ms: float
    p95_ms: float
    in_flight: int
    uneven: bool
    """The share strays more than 10 points from the weight's share."""


class _Node:
    __slots__ = ("errors", "latencies", "requests", "seen", "state", "transport")

    def __init__(self, state: NodeState, transport: Transport) -> None:
        self.state = state
        self.transport = transport
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.seen = 0

    def sample(self, latency: float, rng: random.Random) -> None:
        # Reservoir sampling: bounded memory, unbiased percentiles.
        self.seen += 1
        if len(self.latencies) < _RESERVOIR:
            self.latencies.append(latency)
        else:
            j = rng.randrange(self.seen)
            if j < _RESERVOIR:
                self.latencies[j] = latency


class Lease:
    """One request's use of one node; give it back with :meth:`Balancer.release`."""

    __slots__ = ("domain", "node", "session_moved", "started", "transport")

    def __init__(self, node: _Node, domain: str, session_moved: bool) -> None:
        self.node = node.state
        self.transport = node.transport
        self.domain = domain
        self.session_moved = session_moved
        self.started = trio.current_time()


TransportFactory = Callable[[NodeSpec], Transport]


class Balancer:
    """Assigns requests to nodes.

    Args:
        specs: the mesh.
        make_transport: builds a node's transport from its spec.
        strategy: a strategy name (see :func:`make_strategy`).
        health: thresholds for checks and ejection.
        geo: TLD-to-region overrides, merged over the defaults.
        default_region, region_order: see :class:`GeoRouter`.
        session_ttl, session_epsilon: affinity expiry and load bound.
    """

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        make_transport: TransportFactory,
        *,
        strategy: str = "p2c-ewma",
        health: HealthConfig | None = None,
        geo: dict[str, str] | None = None,
        default_region: str = "",
        region_order: Sequence[str] = (),
        session_ttl: float = 1800.0,
        session_epsilon: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._make_transport = make_transport
        self._strategy: Strategy = make_strategy(strategy, rng=self._rng)
        self.strategy_name = strategy
        self.health = HealthTracker(health or HealthConfig())
        self._geo = GeoRouter(
            {**DEFAULT_GEO_MAP, **(geo or {})},
            default_region=default_region,
            fallback_order=region_order,
        )
        self._session_ttl = session_ttl
        self._session_epsilon = session_epsilon
        self._nodes: dict[str, _Node] = {}
        self._ids = itertools.count()
        self._retired: list[_Node] = []
        self._pools: dict[str, list[NodeState]] = {}
        self._rings: dict[str, AffinityRing] = {}
        self._pools_version = (-1, -1)
        self._mesh_version = 0
        self._regions: list[str] = []
        self._slot_freed = trio.Event()
        self._session_node: OrderedDict[str, str] = OrderedDict()
        self.region_fallbacks = 0
        self.sessions_moved = 0
        self.sessions_split: set[str] = set()
        self.set_nodes(specs)

    # -- the mesh ------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeState]:
        return [n.state for n in self._nodes.values()]

    def set_nodes(self, specs: Sequence[NodeSpec]) -> None:
        """Replace the mesh. Unchanged nodes keep their transport and state;
        removed ones finish their in-flight requests before closing."""
        old = self._nodes
        new: dict[str, _Node] = {}
        for spec in specs:
            kept = old.get(spec.name)
            if kept is not None and kept.state.spec == spec:
                new[spec.name] = kept
            else:
                # Indexes identify nodes to the strategy and the rings: never reused.
                node = _Node(NodeState(spec, next(self._ids)), self._make_transport(spec))
                if kept is not None:
                    node.requests, node.errors = kept.requests, kept.errors
                new[spec.name] = node
        for name, node in old.items():
            if new.get(name) is not node:
                self._retired.append(node)
                self._strategy.forget(node.state)
        self._nodes = new
        self._regions = sorted({s.region for s in specs if s.region})
        self.health.set_nodes([n.state for n in new.values()])
        self._mesh_version += 1
        self._slot_freed.set()

    def reset(self, specs: Sequence[NodeSpec]) -> None:
        """Start over with ``specs`` as if just built: no slow start, no history.
        For use before any request (e.g. a mesh known only at run time)."""
        self._retired.extend(self._nodes.values())
        self._nodes = {}
        self.health = HealthTracker(self.health.config)
        self.set_nodes(specs)

    def transport_of(self, state: NodeState) -> Transport:
        return self._nodes[state.name].transport

    async def aclose(self) -> None:
        for node in [*self._nodes.values(), *self._retired]:
            await node.transport.aclose()
        self._retired.clear()

    async def close_retired(self) -> None:
        """Close transports of removed nodes once nothing is in flight on them."""
        idle = [n for n in self._retired if n.state.in_flight == 0]
        self._retired = [n for n in self._retired if n.state.in_flight > 0]
        for node in idle:
            await node.transport.aclose()

    # -- selection -----------------------------------------------------------

    def _pool_for(self, region: str) -> list[NodeState]:
        version = (self.health.version, self._mesh_version)
        if version != self._pools_version:
            self._pools.clear()
            self._pools_version = version
            self._rebuild_rings()
        pool = self._pools.get(region)
        if pool is None:
            pool = self._compute_pool(region)
            self._pools[region] = pool
        return pool

    def _compute_pool(self, region: str) -> list[NodeState]:
        eligible = self.health.eligible()
        if not eligible:
            # Nothing passes its checks: use the whole mesh rather than stall
            # (the failures then show which nodes are really gone).
            return [n.state for n in self._nodes.values()]
        if not region:
            return eligible
        for r in self._geo.order(region, self._regions):
            pool = [n for n in eligible if n.spec.region in (r, "")]
            if pool:
                return pool
        return eligible

    def _rebuild_rings(self) -> None:
        # Called when eligibility changed: sessions of nodes that left a pool
        # are placed again; all others stay.
        for key, ring in self._rings.items():
            pool = self._compute_pool(key)
            self._pools[key] = pool
            ring.set_nodes(pool)

    def _ring_for(self, region: str) -> AffinityRing:
        ring = self._rings.get(region)
        if ring is None:
            ring = AffinityRing(eps=self._session_epsilon, ttl=self._session_ttl)
            ring.set_nodes(self._pool_for(region))
            self._rings[region] = ring
        return ring

    def region_of(self, request: Request, host: str) -> str:
        return self._geo.region_for(host, request.region)

    def choose(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> tuple[NodeState, bool]:
        """Pick a node for ``request`` (not one named in ``exclude``).

        Returns:
            The node, and whether the request's session had to move to it.
        """
        region = self.region_of(request, host)
        pool = self._pool_for(region)
        if region and pool and all(n.spec.region not in (region, "") for n in pool[:1]):
            self.region_fallbacks += 1
        if exclude:
            pool = [n for n in pool if n.name not in exclude] or pool
        session = request.session or (request.headers or {}).get("X-Session-ID")
        if session:
            return self._choose_for_session(session, region, pool, exclude)
        return self._strategy.pick(pool, host), False

    def _choose_for_session(
        self, session: str, region: str, pool: list[NodeState], exclude: frozenset[str]
    ) -> tuple[NodeState, bool]:
        ring = self._ring_for(region)
        node = ring.assign(session)  # sticky while its node stays eligible
        if node.name in exclude:
            # Its node just failed this request: move the session now rather
            # than wait for the node to be ejected.
            node = self._strategy.pick(pool, session)
            if node.name not in exclude:
                ring.pin(session, node)
        previous = self._session_node.get(session)
        moved = previous is not None and previous != node.name
        if moved:
            assert previous is not None
            old = self._nodes.get(previous)
            if old is not None and previous not in exclude and old.state in self.health.eligible():
                # Moved although its node is fine: worth flagging in stats.
                self.sessions_split.add(session)
            self.sessions_moved += 1
            forget = getattr(old.transport, "forget_session", None) if old else None
            if forget is not None:
                forget(session)  # the session's cookie jar there is stale now
        self._session_node[session] = node.name
        self._session_node.move_to_end(session)
        if len(self._session_node) > _MAX_SESSIONS:
            self._session_node.popitem(last=False)
        return node, moved

    async def acquire(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> Lease:
        """Choose a node and take one of its connection slots (waiting if
        every choice is at its ``max_connections``)."""
        while True:
            for _ in range(3):
                state, moved = self.choose(request, host, exclude)
                node = self._nodes[state.name]
                limit = state.spec.max_connections
                if not limit or state.in_flight < limit:
                    state.in_flight += 1
                    node.requests += 1
                    return Lease(node, host, moved)
            self._slot_freed = trio.Event()
            await self._slot_freed.wait()

    def abandon(self, lease: Lease) -> None:
        """Give a slot back without learning anything (the fetch was cancelled)."""
        lease.node.in_flight -= 1
        self._slot_freed.set()

    def release(
        self,
        lease: Lease,
        *,
        status: int | None = None,
        error: FetchError | None = None,
    ) -> None:
        """Give a slot back and learn from the outcome."""
        state = lease.node
        state.in_flight -= 1
        self._slot_freed.set()
        node = self._nodes.get(state.name)
        latency = trio.current_time() - lease.started
        if error is not None:
            if node is not None:
                node.errors[error.kind] += 1
            fault = is_node_fault(error)
            self.health.record(state, ok=not fault)
            timeout = error.kind.endswith("timeout")
            self._strategy.observe(state, lease.domain, latency, penalty=fault or timeout)
            return
        self.health.record(state, ok=True)
        if node is not None:
            node.sample(latency, self._rng)
            if status is not None and status >= 400:
                node.errors[f"http_{status}"] += 1
        self._strategy.observe(state, lease.domain, latency, penalty=status in _PUSHBACK)

    # -- stats ---------------------------------------------------------------

    def node_stats(self) -> list[NodeStats]:
        total = sum(n.requests for n in self._nodes.values()) or 1
        weight = sum(n.state.spec.weight for n in self._nodes.values()) or 1.0
        out = []
        for node in self._nodes.values():
            spec = node.state.spec
            lat = sorted(node.latencies)
            share = node.requests / total
            expected = spec.weight / weight
            out.append(
                NodeStats(
                    name=spec.name,
                    kind=spec.kind,
                    region=spec.region,
                    weight=spec.weight,
                    state=self.health.state(node.state),
                    requests=node.requests,
                    errors=dict(node.errors),
                    share=round(share, 4),
                    expected_share=round(expected, 4),
                    p50_ms=round(lat[len(lat) // 2] * 1000, 2) if lat else 0.0,
                    p95_ms=round(lat[int(len(lat) * 0.95)] * 1000, 2) if lat else 0.0,
                    in_flight=node.state.in_flight,
                    uneven=total > 100 and abs(share - expected) > 0.10,
                )
            )
        return out
