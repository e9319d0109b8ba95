"""The balancer: assigns each request a node and learns from each response.

A facade over parts with one job each: :mod:`._members` (the mesh and its
transports), :mod:`._select` (pools, geo and the selection policies, and
when a held domain may go), :mod:`._sessions` (where sessions stick, shared
with other workers), :mod:`._slots` (connection slots and leases),
:mod:`._learn` (what outcomes teach, ban verdicts, shared breakers) and
:mod:`._report` (per-node figures).

When no node can serve a request's domain, :meth:`Balancer.acquire` raises
:class:`~crawlmesh.CircuitOpen` (or, with ``direct_fallback``, sends it
directly from this machine); :meth:`Balancer.blocked_until` tells the
dispatcher how long to hold the domain's requests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import trio

from .._exceptions import FetchError
from .._observe import NodeStats
from .._request import Request
from .._resilience import Ban, BanRules, BreakerConfig
from .._settings import HealthSettings
from .._shaping import Shaper
from .._state import MeshShare
from .._transport import Transport
from .._util._tally import NodeTally, RateWaits
from ._circuits import Circuits
from ._geo import DEFAULT_GEO_MAP, GeoRouter
from ._health import HealthTracker
from ._learn import Learner
from ._learn import verdicts as _verdicts
from ._members import DIRECT_FALLBACK, Members, TransportFactory
from ._pushback import NodePushbacks
from ._report import node_stats, tallies
from ._select import NodesBusy, Pools, Selector
from ._sessions import Sessions, session_of
from ._slots import Lease, Slots
from ._strategies import make_strategy
from ._types import NodeSpec, NodeState

__all__ = [
    "DIRECT_FALLBACK",
    "Balancer",
    "Lease",
    "NodesBusy",
    "TransportFactory",
    "_verdicts",
    "session_of",
]


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
        health: HealthSettings | None = None,
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
        rng = rng or random.Random()
        chooser = make_strategy(strategy, rng=rng)
        self.strategy_name = strategy
        members = self._members = Members(
            make_transport, chooser, HealthTracker(health or HealthSettings())
        )
        lot = trio.lowlevel.ParkingLot()
        pushbacks = NodePushbacks()
        learner = self._learn = Learner(
            members, chooser, pushbacks, lot.unpark_all, domain_labels=domain_labels, rng=rng
        )
        members.health.on_down = learner.node_down
        self.circuits: Circuits | None = None
        if breakers is not None:
            self.circuits = Circuits(breakers, bans, on_change=learner.breaker_changed)
        learner.circuits = self.circuits
        rates = node_rates if node_rates is not None and node_rates.active else None
        geo_router = GeoRouter(
            {**DEFAULT_GEO_MAP, **(geo or {})},
            default_region=default_region,
            fallback_order=region_order,
        )
        pools = self._pools = Pools(members, self.circuits, geo_router)
        self._sessions = Sessions(
            members,
            pools.pool_for,
            lambda: pools.eligible_names,
            chooser,
            ttl=session_ttl,
            epsilon=session_epsilon,
        )
        self._select = Selector(
            members,
            pools,
            self._sessions,
            chooser,
            circuits=self.circuits,
            pushbacks=pushbacks,
            node_rates=rates,
            direct_fallback=direct_fallback,
        )
        self._slots = Slots(
            members,
            pools,
            self._select,
            chooser,
            circuits=self.circuits,
            pushbacks=pushbacks,
            node_rates=rates,
            lot=lot,
        )
        self._node_rates = rates
        self.set_nodes(specs)

    # -- the mesh ------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeState]:
        return self._members.states()

    @property
    def health(self) -> HealthTracker:
        """The active checks and slow start of the nodes in force."""
        return self._members.health

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
        self._members.set_nodes(specs)
        self._sessions.clear_rings()
        self._slots.wake()

    def reset(self, specs: Sequence[NodeSpec]) -> None:
        """Start over with ``specs`` as if just built: no slow start, no history.
        For use before any request (e.g. a mesh known only at run time)."""
        self._members.reset(specs)
        self._sessions.clear_rings()
        self._slots.wake()

    def transport_of(self, state: NodeState) -> Transport:
        return self._members.nodes[state.name].transport

    async def aclose(self) -> None:
        await self._members.aclose()

    async def close_retired(self) -> None:
        """Close transports of removed nodes once nothing is in flight on them."""
        await self._members.close_retired()

    # -- shared with other workers -------------------------------------------

    @property
    def share(self) -> MeshShare | None:
        """A distributed crawl's shared sessions and breakers (None: ours alone)."""
        return self._sessions.share

    @share.setter
    def share(self, share: MeshShare | None) -> None:
        self._sessions.share = share
        self._learn.share = share

    def apply_shared_breaker(self, node: str, domain: str | None, seconds: float) -> None:
        """Another worker's breaker opened: open ours for as long."""
        self._learn.apply_shared_breaker(node, domain, seconds)

    # -- selection -----------------------------------------------------------

    def region_of(self, request: Request, host: str) -> str:
        return self._pools.region_of(request, host)

    def choose(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> tuple[NodeState, bool, bool]:
        """Pick a node for ``request`` (not one named in ``exclude``).

        Returns:
            The node; whether the request's session had to move to it; whether
            the request left its region because the region had no eligible node.
        """
        return self._select.choose(request, host, exclude)

    def blocked_until(self, host: str) -> tuple[float, bool]:
        """When a request to ``host`` may next be sent through some node
        (at most ``trio.current_time()`` if now), and whether circuit
        breakers alone hold it back (not just per-node rates).

        The dispatcher holds a domain's requests until then; a request sent
        earlier would only get :class:`~crawlmesh.CircuitOpen` (or
        :class:`NodesBusy`).
        """
        return self._select.blocked_until(host)

    def pushed_back_until(self) -> float:
        """When the first node of the mesh takes requests again after
        pushing back (at most now if some node did not push back)."""
        return self._select.pushed_back_until()

    def pause_node(self, node: str, host: str, until: float) -> bool:
        """Pause ``host`` through ``node`` only (a Retry-After under a
        per-node rate); False if ``host`` has no per-node rate."""
        rates = self._node_rates
        if rates is None or not rates.limits(host):
            return False
        rates.node_pause(node, host, until)
        return True

    # -- slots -----------------------------------------------------------------

    async def acquire(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> Lease:
        """Choose a node and take one of its connection slots, waiting while
        every candidate is at its ``max_connections``."""
        sessions = self._sessions
        if sessions.share is not None:
            session = session_of(request)
            if session is not None:
                await sessions.agree(
                    session, request, host, exclude, self._select.choose, self._pools.region_of
                )
        return await self._slots.acquire(request, host, exclude)

    def _lease(
        self, state: NodeState, host: str, moved: bool, fell_back: bool, exclude: frozenset[str]
    ) -> Lease:
        # A chosen node's slot, as acquire() takes it (for benchmarks).
        return self._slots.lease(state, host, moved, fell_back, exclude)

    def abandon(self, lease: Lease) -> None:
        """Give a slot back without learning anything (the fetch was cancelled)."""
        self._slots.abandon(lease)

    # -- learning --------------------------------------------------------------

    def ban(self, status: int, body: bytes, headers: Mapping[str, str]) -> Ban | None:
        """Whether a response looks like a ban (when bans are detected)."""
        return self._learn.ban(status, body, headers)

    def release(
        self,
        lease: Lease,
        *,
        status: int | None = None,
        error: FetchError | None = None,
        ban: Ban | None = None,
        cause: tuple[str, int | None] | None = None,
    ) -> None:
        """Give a slot back and learn from the outcome.

        Args:
            lease: from :meth:`acquire`.
            status: the target's status, if a response came back.
            error: the failure, if none did.
            ban: the response's ban verdict (see :meth:`ban`).
            cause: the request's (url, attempt), for the log line of a
                breaker the outcome changes.
        """
        self._slots.give_back(lease)
        self._learn.learn(lease, status, error, ban, cause)

    # -- stats ---------------------------------------------------------------

    @property
    def rate_waits(self) -> RateWaits:
        """A session's waits for its node's rate."""
        return self._slots.rate_waits

    @rate_waits.setter
    def rate_waits(self, waits: RateWaits) -> None:
        self._slots.rate_waits = waits

    @property
    def sessions_moved(self) -> int:
        return self._sessions.moved

    @property
    def sessions_split(self) -> set[str]:
        return self._sessions.split

    @property
    def region_fallbacks(self) -> int:
        return self._slots.region_fallbacks

    @property
    def direct_fallbacks(self) -> int:
        return self._slots.direct_fallbacks

    @property
    def node_count(self) -> int:
        """Nodes in the mesh, with the direct fallback once it has been used."""
        return len(self._members.nodes) + (self._members.direct is not None)

    def tallies(self) -> list[tuple[str, NodeTally]]:
        """Each node's name and tally (for the metrics), in mesh order."""
        return tallies(self._members)

    def node_stats(self, top: int | None = None) -> list[NodeStats]:
        """Per-node figures, in mesh order.

        Args:
            top: only the ``top`` nodes with the most requests, busiest first
                (a live display's view of a big mesh: only their latency
                samples are sorted).
        """
        return node_stats(self._members, self.circuits, self.strategy_name, top)
