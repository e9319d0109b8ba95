"""The balancer: assigns each request a node and learns from each response.

Selection runs the policies in a fixed order: health (only eligible nodes),
circuit breakers (no open node; for the request's domain, no open pair),
geo (the request's region, then the fallback order), affinity (a session
stays on its node), strategy (among what is left). Candidate lists are
rebuilt only when eligibility or the mesh changes, so one selection costs
O(1) for p2c-ewma whatever the mesh size; only a domain with a breaker that
is not closed pays for a scan of its candidates.

When no node can serve a request's domain, :meth:`Balancer.acquire` raises
:class:`~crawlmesh.CircuitOpen` (or, with ``direct_fallback``, sends it
directly from this machine); :meth:`Balancer.blocked_until` tells the
dispatcher how long to hold the domain's requests.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import structlog
import trio

from .._exceptions import CircuitOpen, CrawlmeshError, FetchError, SettingsError
from .._observe._nodes import (
    SHARE_MIN_REQUESTS,
    SHARE_TOLERANCE,
    SHARE_TOLERANCE_RELATIVE,
    TARGET_FAILURE_KINDS,
    NodeStats,
)
from .._request import Request
from .._resilience import BanRules, BreakerConfig, Transition
from .._shaping._shaper import Shaper
from .._state._shared import MeshShare
from .._transport._base import Transport, is_node_fault
from .._transport._node import is_node_pushback
from .._util._redact import redact
from .._util._tally import DomainLabels, NodeTally, RateWaits
from ._circuits import SHARED, TARGET_FAILURE_STATUSES, Circuits, Permits
from ._geo import DEFAULT_GEO_MAP, GeoRouter
from ._health import HealthConfig, HealthTracker
from ._pushback import DEFAULT_HOLD, NodePushbacks
from ._ring import AffinityRing
from ._strategies import Strategy, make_strategy
from ._types import NodeSpec, NodeState

__all__ = ["Balancer", "Lease", "NodesBusy"]

log = structlog.get_logger("crawlmesh.balancer")

# Statuses from a target that say "slow down": a latency penalty for the
# (node, domain) pair, so p2c-ewma sends that domain elsewhere.
_PUSHBACK = frozenset({429, 503})
_RESERVOIR = 2048
_MAX_SESSIONS = 100_000
# A node fault is learnt as this much latency (at least): a node that refuses
# at once must not look like the fastest one to p2c-ewma.
_FAULT_LATENCY = 5.0
# Picks tried before scanning the pool for a node with a free slot.
_PICKS_BEFORE_SCAN = 3
# The node that serves requests directly when nothing else can (direct_fallback).
DIRECT_FALLBACK = "direct-fallback"


class NodesBusy(CircuitOpen):
    """Every node is at its per-node rate for the request's domain, or asked
    to be left alone (its own 429/503 and Retry-After): the request waits in
    the frontier, like one no breaker admits."""

    kind = "rate_limited"


class _Node:
    __slots__ = ("errors", "latencies", "requests", "seen", "state", "tally", "transport")

    def __init__(self, state: NodeState, transport: Transport) -> None:
        self.state = state
        self.transport = transport
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


class Lease:
    """One request's use of one node; give it back with :meth:`Balancer.release`."""

    __slots__ = (
        "domain",
        "fell_back",
        "node",
        "permits",
        "session_moved",
        "started",
        "transport",
    )

    def __init__(
        self,
        node: _Node,
        domain: str,
        session_moved: bool,
        fell_back: bool,
        permits: Permits | None,
    ) -> None:
        self.node = node.state
        self.transport = node.transport
        self.domain = domain
        self.session_moved = session_moved
        self.fell_back = fell_back
        self.permits = permits
        self.started = trio.current_time()


TransportFactory = Callable[[NodeSpec], Transport]


def session_of(request: Request) -> str | None:
    """The request's session: ``Request(session=)``, else an X-Session-ID header."""
    if request.session is not None:
        return request.session
    for name, value in (request.headers or {}).items():
        if name.lower() == "x-session-id":
            return value
    return None


def _same_egress(a: NodeSpec, b: NodeSpec) -> bool:
    # What the transport is built from; other fields can change in place.
    return (a.kind, a.url, a.template) == (b.kind, b.url, b.template)


class Balancer:
    """Assigns requests to nodes.

    Args:
        specs: the mesh.
        make_transport: builds a node's transport from its spec.
        strategy: a strategy name (see :func:`make_strategy`).
        health: thresholds for active checks and slow start.
        geo: TLD-to-region overrides, merged over the defaults.
        default_region, region_order: see :class:`GeoRouter`.
        session_ttl: idle seconds after which a session's node is forgotten.
        session_epsilon: bounded-load slack for placing new sessions.
        breakers: circuit breaker thresholds (None: no breakers).
        bans: ban detection for the (node, domain) breakers (None: none).
        direct_fallback: when no node can serve a domain, fetch directly
            from this machine rather than hold its requests.
        node_rates: rate rules applied per (node, domain) (``per_node``).
        domain_labels: domains with a label of their own in the metrics.
        rng: randomness for the strategy and latency sampling.
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
        breakers: BreakerConfig | None = None,
        bans: BanRules | None = None,
        direct_fallback: bool = False,
        node_rates: Shaper | None = None,
        domain_labels: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._slots = trio.lowlevel.ParkingLot()
        self.circuits: Circuits | None = None
        if breakers is not None:
            self.circuits = Circuits(breakers, bans, on_change=self._breaker_changed)
        self._direct_fallback = direct_fallback
        self._node_rates = node_rates if node_rates is not None and node_rates.active else None
        self._direct: _Node | None = None
        self.direct_fallbacks = 0
        self._domain_labels = DomainLabels(domain_labels)
        self.rate_waits = RateWaits()  # a session's waits for its node's rate
        self._pushbacks = NodePushbacks()
        self._make_transport = make_transport
        self._strategy: Strategy = make_strategy(strategy, rng=self._rng)
        self.strategy_name = strategy
        self.health = HealthTracker(health or HealthConfig())
        self.health.on_down = self._node_down
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
        self._eligible_names: frozenset[str] = frozenset()
        self._pools_version = (-1, -1, -1)
        self._mesh_version = 0
        self._regions: list[str] = []
        # The session stick table: session -> (node name, last use). It is the
        # authority; the per-region rings only place sessions it does not hold.
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # A distributed crawl's shared sessions and breakers (None: ours alone).
        self.share: MeshShare | None = None
        self._shared_at: dict[str, float] = {}  # session -> when last stored
        self.region_fallbacks = 0
        self.sessions_moved = 0
        self.sessions_split: set[str] = set()
        self.set_nodes(specs)

    # -- the mesh ------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeState]:
        return [n.state for n in self._nodes.values()]

    def set_nodes(self, specs: Sequence[NodeSpec]) -> None:
        """Replace the mesh.

        A node whose kind, url and template are unchanged keeps its
        transport (and its sessions' cookie jars) and its state; other fields
        change in place. Removed nodes finish their in-flight requests before
        their transports close.

        Raises:
            SettingsError: a new node's transport cannot be built (e.g. an
                api template's environment variable is missing); the mesh in
                force is left untouched.
        """
        old = self._nodes
        new: dict[str, _Node] = {}
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
                node = _Node(NodeState(spec, next(self._ids)), self._make_transport(spec))
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
        self._nodes = new
        self._regions = sorted({s.region for s in specs if s.region})
        self.health.set_nodes([n.state for n in new.values()])
        self._rings.clear()  # rebuilt on demand; live sessions stay in the stick table
        self._mesh_version += 1
        self._slots.unpark_all()

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
        direct = [self._direct] if self._direct is not None else []
        for node in [*self._nodes.values(), *self._retired, *direct]:
            await node.transport.aclose()
        self._retired.clear()

    async def close_retired(self) -> None:
        """Close transports of removed nodes once nothing is in flight on them."""
        idle = [n for n in self._retired if n.state.in_flight == 0]
        self._retired = [n for n in self._retired if n.state.in_flight > 0]
        for node in idle:
            await node.transport.aclose()

    # -- selection -----------------------------------------------------------

    def _refresh(self) -> None:
        circuits = self.circuits
        if circuits is not None:
            circuits.refresh(trio.current_time())
        version = (
            self.health.version,
            self._mesh_version,
            circuits.version if circuits is not None else 0,
        )
        if version != self._pools_version:
            self._pools_version = version
            self._pools.clear()
            self._eligible_names = frozenset(n.name for n in self.health.eligible())
            for key, ring in self._rings.items():
                ring.set_nodes(self._pool_for(key))

    def _pool_for(self, region: str) -> list[NodeState]:
        pool = self._pools.get(region)
        if pool is None:
            pool = self._pools[region] = self._compute_pool(region)
        return pool

    def _compute_pool(self, region: str) -> list[NodeState]:
        eligible = self.health.eligible()
        if not eligible:
            # Nothing passes its checks: use the whole mesh rather than stall
            # (the failures then show which nodes are really gone).
            eligible = [n.state for n in self._nodes.values()]
        circuits = self.circuits
        if circuits is not None:
            # An open node breaker takes its node out of every region, so a
            # region whose nodes are all open falls back by the region order.
            eligible = [n for n in eligible if not circuits.node_out(n.name)]
        if not region or not eligible:
            return eligible
        for r in self._geo.order(region, self._regions):
            pool = [n for n in eligible if n.spec.region in (r, "")]
            if pool:
                return pool
        return eligible

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
    ) -> tuple[NodeState, bool, bool]:
        """Pick a node for ``request`` (not one named in ``exclude``).

        Returns:
            The node; whether the request's session had to move to it; whether
            the request left its region because the region had no eligible node.
        """
        self._refresh()
        region = self.region_of(request, host)
        pool = self._pool_for(region)
        circuits = self.circuits
        if circuits is not None and not (pool and circuits.trouble_free(host)):
            pool, exclude = self._admitted(pool, host, exclude)
            if not pool:
                return self._fall_back_direct(request, host), False, True
        pushbacks = self._pushbacks
        now = trio.current_time()
        if pushbacks.active(now):
            # Nodes that asked to be left alone get nothing, from the whole
            # mesh if the region's all did, as blocked_until() counts them.
            pool = [n for n in pool if not pushbacks.paused(n.name, now)] or [
                n
                for n in self._pool_for("")
                if not pushbacks.paused(n.name, now)
                and (circuits is None or circuits.admits(n.name, host, now))
            ]
            if not pool:
                raise NodesBusy(
                    f"every node that could serve {host} pushed back (429/503 with "
                    "Retry-After): waiting for the first to take requests again",
                    request=request,
                )
        fell_back = bool(region) and pool[0].spec.region not in (region, "")
        if exclude:
            pool = [n for n in pool if n.name not in exclude] or pool
        session = session_of(request)
        rates = self._node_rates
        if session is None and rates is not None and rates.limits(host):
            # A per-node rate: only nodes whose pair is under it, from the
            # whole mesh if the region's are all at it, as blocked_until()
            # counts them (a session keeps its node and waits for it in
            # acquire() instead).
            under = [n for n in pool if rates.node_wait(n.name, host, now) <= 0]
            if not under:
                # exclude is a preference, as everywhere: not a reason to wait.
                under = [
                    n
                    for n in self._pool_for("")
                    if rates.node_wait(n.name, host, now) <= 0
                    and not pushbacks.paused(n.name, now)
                    and (circuits is None or circuits.admits(n.name, host, now))
                ]
            if not under:
                raise NodesBusy(f"every node is at its rate for {host}", request=request)
            pool = under
        if session is not None:
            node, moved = self._choose_for_session(session, host, region, pool, exclude)
            return node, moved, fell_back
        return self._strategy.pick(pool, host), False, fell_back

    def _admitted(
        self, pool: list[NodeState], host: str, exclude: frozenset[str]
    ) -> tuple[list[NodeState], frozenset[str]]:
        """The nodes of ``pool`` whose breakers admit a request to ``host``
        (else those of the whole mesh, as a region with all its nodes open
        falls back), and ``exclude`` grown by the ones that do not (so a
        session leaves a node that cannot serve it)."""
        circuits = self.circuits
        assert circuits is not None
        now = trio.current_time()
        admitted = [n for n in pool if circuits.admits(n.name, host, now)]
        if not admitted:
            admitted = [n for n in self._pool_for("") if circuits.admits(n.name, host, now)]
        # Every node that cannot take it (in this region or not, open or not)
        # is excluded, so a session held by one moves.
        names = {n.name for n in admitted}
        exclude = exclude | {name for name in self._nodes if name not in names}
        return admitted, exclude

    def _fall_back_direct(self, request: Request, host: str) -> NodeState:
        """The direct fallback node, if allowed and admitted, else raise."""
        circuits = self.circuits
        assert circuits is not None
        if self._direct_fallback:
            if self._direct is None:
                spec = NodeSpec(name=DIRECT_FALLBACK, kind="direct")
                self._direct = _Node(NodeState(spec, next(self._ids)), self._make_transport(spec))
            if circuits.admits(DIRECT_FALLBACK, host, trio.current_time()):
                return self._direct.state
        raise CircuitOpen(
            f"no node can serve {host} now: their circuit breakers are open", request=request
        )

    def blocked_until(self, host: str) -> tuple[float, bool]:
        """When a request to ``host`` may next be sent through some node
        (at most ``trio.current_time()`` if now), and whether circuit
        breakers alone hold it back (not just per-node rates).

        The dispatcher holds a domain's requests until then; a request sent
        earlier would only get :class:`~crawlmesh.CircuitOpen` (or
        :class:`NodesBusy`).
        """
        circuits, rates = self.circuits, self._node_rates
        troubled = circuits is not None and not circuits.trouble_free(host)
        limited = rates is not None and rates.limits(host)
        now = trio.current_time()
        if self._pushbacks.active(now):
            return self._blocked_by_pushback(host, now), False
        if not (troubled or limited):
            return -math.inf, False
        self._refresh()
        pool = self._pool_for("")
        if not limited:
            assert circuits is not None
            if len(pool) > circuits.troubled_count(host):
                # Some node has neither breaker open or half-open: no scan.
                return now, False
        # Every node breaker open: wait for the first to half-open.
        names: list[str] = [n.name for n in pool] or list(self._nodes)
        if troubled:
            assert circuits is not None
            until = circuits.blocked_until(host, names, now)
            if until > now:
                if not self._direct_fallback:
                    return until, True
                # choose() falls back to the direct node (with no rate) only
                # when breakers refuse every other node: count it only then.
                direct = circuits.admit_at(DIRECT_FALLBACK, host, now)
                return (now, False) if direct <= now else (min(until, direct), True)
        if not limited:
            return now, False
        assert rates is not None
        first = math.inf
        for name in names:
            at = now + rates.node_wait(name, host, now)
            if circuits is not None:
                at = max(at, circuits.admit_at(name, host, now))
            if at <= now:
                return now, False
            first = min(first, at)
        return first, False

    def _blocked_by_pushback(self, host: str, now: float) -> float:
        """:meth:`blocked_until` while some node asked to be left alone:
        the first time some node takes requests again, its breakers and
        per-node rate counted (as :meth:`choose` picks)."""
        self._refresh()
        circuits, rates = self.circuits, self._node_rates
        limited = rates is not None and rates.limits(host)
        names = [n.name for n in self._pool_for("")] or list(self._nodes)
        first = refused = math.inf  # refused: when breakers admit some node
        for name in names:
            at = self._pushbacks.until(name)
            if circuits is not None:
                admit = circuits.admit_at(name, host, now)
                refused = min(refused, admit)
                at = max(at, admit)
            if limited:
                assert rates is not None
                at = max(at, now + rates.node_wait(name, host, now))
            if at <= now:
                return now
            first = min(first, at)
        if circuits is not None and self._direct_fallback and refused > now:
            # choose() sends it directly while breakers refuse every node.
            direct = circuits.admit_at(DIRECT_FALLBACK, host, now)
            if direct < refused:
                first = min(first, direct)
        return max(first, now)

    def pushed_back_until(self) -> float:
        """When the first node of the mesh takes requests again after
        pushing back (at most now if some node did not push back)."""
        now = trio.current_time()
        names = [n.name for n in self._pool_for("")] or list(self._nodes)
        return min((self._pushbacks.until(name) for name in names), default=now)

    def pause_node(self, node: str, host: str, until: float) -> bool:
        """Pause ``host`` through ``node`` only (a Retry-After under a
        per-node rate); False if ``host`` has no per-node rate."""
        rates = self._node_rates
        if rates is None or not rates.limits(host):
            return False
        rates.node_pause(node, host, until)
        return True

    def _breaker_changed(self, scope: str, transition: Transition) -> None:
        share = self.share
        if share is not None and transition.new == "open" and transition.reason != SHARED:
            if scope == "node":
                share.breaker_opened(str(transition.key), None, transition.cooldown)
            else:
                name, domain = cast(tuple[str, str], transition.key)
                share.breaker_opened(name, domain, transition.cooldown)
        if scope == "node" and transition.new == "closed":
            node = self._nodes.get(str(transition.key))
            if node is not None:
                self.health.ramp(node.state)  # back at full weight gradually
        # A closed or half-open breaker may let waiting acquirers through.
        self._slots.unpark_all()

    def _choose_for_session(
        self,
        session: str,
        host: str,
        region: str,
        pool: list[NodeState],
        exclude: frozenset[str],
    ) -> tuple[NodeState, bool]:
        now = trio.current_time()
        sessions = self._sessions
        held = sessions.get(session)
        if held is not None and now - held[1] > self._session_ttl:
            held = None  # expired: a new session as far as placement goes
        if held is not None:
            name = held[0]
            node = self._nodes.get(name)
            if node is not None and name in self._eligible_names and name not in exclude:
                sessions[session] = (name, now)
                sessions.move_to_end(session)
                return node.state, False
        # A new session, or its node is gone: place it on the region's ring.
        ring = self._ring_for(region)
        ring.release(session)
        state = ring.assign(session)
        if state.name in exclude or state.name not in self._nodes:
            state = self._strategy.pick(pool, host)
            ring.pin(session, state)
        moved = held is not None and held[0] != state.name
        if moved:
            assert held is not None
            old = self._nodes.get(held[0])
            if held[0] in self._eligible_names and held[0] not in exclude:
                self.sessions_split.add(session)  # cannot happen by construction
            self.sessions_moved += 1
            if old is not None:
                forget = getattr(old.transport, "forget_session", None)
                if forget is not None:
                    forget(session)  # its cookie jar there is stale now
        sessions[session] = (state.name, now)
        sessions.move_to_end(session)
        while len(sessions) > _MAX_SESSIONS:
            sessions.popitem(last=False)
        if moved and self.share is not None:
            self.share.session_moved(session, state.name, self._session_ttl)
            self._shared_at[session] = now
        return state, moved

    # -- shared with other workers ----------------------------------------------

    async def _share_session(
        self, session: str, request: Request, host: str, exclude: frozenset[str]
    ) -> None:
        """Agree with the other workers on ``session``'s node: the first to
        place it stores its choice, the others adopt it."""
        share = self.share
        assert share is not None
        now = trio.current_time()
        held = self._sessions.get(session)
        if held is not None and now - held[1] <= self._session_ttl:
            if now - self._shared_at.get(session, -math.inf) > self._session_ttl / 4:
                share.session_moved(session, held[0], self._session_ttl)  # still in use
                self._shared_at[session] = now
            return
        state, _, _ = self.choose(request, host, exclude)  # our placement, held locally
        name = await share.stick(session, state.name, self._session_ttl)
        self._shared_at[session] = trio.current_time()
        if len(self._shared_at) > _MAX_SESSIONS:
            self._shared_at.clear()
        node = self._nodes.get(name)
        if name == state.name or node is None or name not in self._eligible_names:
            if name != state.name:  # theirs is gone or out here: ours stands
                share.session_moved(session, state.name, self._session_ttl)
            return
        ring = self._ring_for(self.region_of(request, host))
        ring.release(session)
        ring.pin(session, node.state)
        self._sessions[session] = (name, trio.current_time())

    def _node_down(self, name: str) -> None:
        """Our checks find ``name`` down: every worker takes it out until
        two check intervals from now (renewed by each failed check)."""
        if self.share is not None:
            self.share.breaker_opened(name, None, 2 * self.health.config.interval)

    def apply_shared_breaker(self, node: str, domain: str | None, seconds: float) -> None:
        """Another worker's breaker opened: open ours for as long."""
        if self.circuits is not None and (node in self._nodes or node == DIRECT_FALLBACK):
            self.circuits.force_open(node, domain, trio.current_time(), seconds)

    async def acquire(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> Lease:
        """Choose a node and take one of its connection slots, waiting while
        every candidate is at its ``max_connections``."""
        if self.share is not None:
            session = session_of(request)
            if session is not None:
                await self._share_session(session, request, host, exclude)
        while True:
            for _ in range(_PICKS_BEFORE_SCAN):
                state, moved, fell_back = self.choose(request, host, exclude)
                if self._node_rates is not None:
                    # A session's node at its per-node rate: wait for it,
                    # then choose again (its node may have changed).
                    wait = self._node_rates.node_wait(state.name, host, trio.current_time())
                    if wait > 0:
                        await trio.sleep(wait)
                        self.rate_waits.add("node_rate", wait)
                        break
                # A session's node that pushed back: wait for it, as for its rate.
                wait = self._pushbacks.until(state.name) - trio.current_time()
                if wait > 0:
                    await trio.sleep(wait)
                    self.rate_waits.add("node_rate", wait)
                    break
                if self._has_room(state):
                    return self._lease(state, host, moved, fell_back, exclude)
            else:
                # Unlucky picks, or every node full: any room before waiting?
                lease = self._any_room(request, host, fell_back, exclude)
                if lease is not None:
                    return lease
                await self._slots.park()

    def _any_room(
        self, request: Request, host: str, fell_back: bool, exclude: frozenset[str]
    ) -> Lease | None:
        """A lease on any candidate with a free slot (not for a session,
        which must keep its node), else None."""
        region = self.region_of(request, host)
        circuits, now = self.circuits, trio.current_time()
        room = [
            n
            for n in self._pool_for(region)
            if n.name not in exclude
            and self._has_room(n)
            and not self._pushbacks.paused(n.name, now)
            and (circuits is None or circuits.admits(n.name, host, now))
        ]
        rates = self._node_rates
        if room and rates is not None and rates.limits(host):
            room = [n for n in room if rates.node_wait(n.name, host, now) <= 0]
        if room and session_of(request) is None:
            state = self._strategy.pick(room, host)
            return self._lease(state, host, False, fell_back, exclude)
        return None

    @staticmethod
    def _has_room(state: NodeState) -> bool:
        limit = state.spec.max_connections
        return not limit or state.in_flight < limit

    def _node_named(self, name: str) -> _Node | None:
        node = self._nodes.get(name)
        if node is None and name == DIRECT_FALLBACK:
            node = self._direct
        return node

    def _lease(
        self, state: NodeState, host: str, moved: bool, fell_back: bool, exclude: frozenset[str]
    ) -> Lease:
        node = self._node_named(state.name)
        assert node is not None
        permits = None
        if self.circuits is not None:
            permits = self.circuits.acquire(state.name, host, trio.current_time())
            if permits is None:  # cannot happen: choose() checked, nothing ran since
                raise CircuitOpen(f"{state.name}: circuit breaker open for {host}")
        if self._node_rates is not None:
            self._node_rates.node_reserve(state.name, host, trio.current_time())
        state.in_flight += 1
        node.requests += 1
        if node is self._direct:
            self.direct_fallbacks += 1
        elif fell_back and not exclude:
            self.region_fallbacks += 1  # once per request, not per attempt
        return Lease(node, host, moved, fell_back, permits)

    def abandon(self, lease: Lease) -> None:
        """Give a slot back without learning anything (the fetch was cancelled)."""
        lease.node.in_flight -= 1
        if lease.permits is not None:
            lease.permits.release()
        self._slots.unpark_all()

    def ban_reason(self, status: int, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why a response is a ban, if it looks like one (and bans are detected)."""
        circuits = self.circuits
        return None if circuits is None else circuits.ban_reason(status, body, headers)

    def release(
        self,
        lease: Lease,
        *,
        status: int | None = None,
        error: FetchError | None = None,
        ban: str | None = None,
        cause: tuple[str, int | None] | None = None,
    ) -> None:
        """Give a slot back and learn from the outcome.

        Args:
            lease: from :meth:`acquire`.
            status: the target's status, if a response came back.
            error: the failure, if none did.
            ban: why the response looked like a ban (see :meth:`ban_reason`).
            cause: the request's (url, attempt), for the log line of a
                breaker the outcome changes.
        """
        state = lease.node
        state.in_flight -= 1
        self._slots.unpark_all()
        now = trio.current_time()
        if lease.permits is not None:
            assert self.circuits is not None
            node_ok, pair_ok = _verdicts(status, error, ban)
            self.circuits.record(lease.permits, now, node_ok=node_ok, pair_ok=pair_ok, cause=cause)
        node = self._node_named(state.name)
        if node is None or node.state is not state:
            return  # a node removed by a reload: nothing left to learn for
        latency = now - lease.started
        node.tally.record(self._domain_labels.label(lease.domain), status, latency)
        if ban is not None and self.circuits is not None:
            self.circuits.banned[state.name] += 1
        if error is not None:
            node.errors[error.kind] += 1
            if is_node_pushback(error):
                hold = getattr(error, "retry_after", None)
                self._pushbacks.push_back(
                    state.name, now + (DEFAULT_HOLD if hold is None else hold)
                )
            fault = is_node_fault(error)
            if fault:
                latency = max(latency, _FAULT_LATENCY)
            slow = fault or error.is_timeout
            self._strategy.observe(state, lease.domain, latency, penalty=slow)
            return
        node.sample(latency, self._rng)
        penalty = status in _PUSHBACK or ban is not None
        self._strategy.observe(state, lease.domain, latency, penalty=penalty)

    # -- stats ---------------------------------------------------------------

    def tallies(self) -> list[tuple[str, NodeTally]]:
        """Each node's name and tally (for the metrics), in mesh order."""
        nodes = [*self._nodes.values(), *([self._direct] if self._direct is not None else [])]
        return [(node.state.name, node.tally) for node in nodes]

    @property
    def node_count(self) -> int:
        """Nodes in the mesh, with the direct fallback once it has been used."""
        return len(self._nodes) + (self._direct is not None)

    def node_stats(self, top: int | None = None) -> list[NodeStats]:
        """Per-node figures, in mesh order.

        Args:
            top: only the ``top`` nodes with the most requests, busiest first
                (a live display's view of a big mesh: only their latency
                samples are sorted).
        """
        nodes = list(self._nodes.values())
        if self._direct is not None:
            nodes.append(self._direct)
        total = sum(n.requests for n in nodes) or 1
        weight = sum(n.state.spec.weight for n in self._nodes.values()) or 1.0
        weighs = self.strategy_name != "round-robin"
        circuits = self.circuits
        if top is not None:
            nodes = heapq.nlargest(top, nodes, key=lambda n: n.requests)
        out = []
        for node in nodes:
            direct = node is self._direct
            breaker = circuits.nodes.peek(node.state.name) if circuits is not None else None
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
                    state="fallback" if direct else self.health.state(node.state),
                    requests=node.requests,
                    errors=dict(node.errors),
                    bans=circuits.banned[spec.name] if circuits is not None else 0,
                    breaker=breaker.state() if breaker is not None else "closed",
                    share=round(share, 4),
                    expected_share=0.0 if direct else round(expected, 4),
                    p50_ms=_percentile_ms(lat, 0.50),
                    p95_ms=_percentile_ms(lat, 0.95),
                    in_flight=node.state.in_flight,
                    uneven=weighs
                    and not direct
                    and total > SHARE_MIN_REQUESTS
                    and abs(share - expected)
                    > max(SHARE_TOLERANCE, expected * SHARE_TOLERANCE_RELATIVE),
                    endpoint=_endpoint(spec),
                    breaker_trips=circuits.node_trips[spec.name] if circuits is not None else 0,
                    pair_breaker_trips=(
                        circuits.pair_trips[spec.name] if circuits is not None else 0
                    ),
                )
            )
        return out


def _verdicts(
    status: int | None, error: FetchError | None, ban: str | None
) -> tuple[bool | None, bool | None]:
    """What an outcome says to the node's breaker and to the pair's (None:
    nothing; see :mod:`._circuits`)."""
    if error is not None:
        if is_node_pushback(error):
            # The node is up and asked to be left alone for a while, as a
            # target's 429 asks: its pause does that, not its breaker.
            return None, None
        if is_node_fault(error):
            return False, None
        if error.kind == "total_timeout":
            # The attempt's own deadline: a node that hangs and a target that
            # drips look the same, so the node's breaker is told nothing
            # (not a success) and the pair's counts the failure.
            return None, False
        return True, (False if error.kind in TARGET_FAILURE_KINDS else None)
    if ban is not None or status in TARGET_FAILURE_STATUSES:
        return True, False
    return True, (None if status in _PUSHBACK else True)


def _endpoint(spec: NodeSpec) -> str:
    """Where a node sends requests, safe to show (credentials masked)."""
    return redact(spec.template if spec.kind == "api" else spec.url)


def _percentile_ms(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1] * 1000, 2)
