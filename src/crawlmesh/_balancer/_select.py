"""Selection: which node serves a request, and when a domain can be served.

The policies run in a fixed order: health (only eligible nodes), circuit
breakers (no open node; for the request's domain, no open pair), geo (the
request's region, then the fallback order), pushbacks and per-node rates,
affinity (a session stays on its node, :mod:`._sessions`), strategy (among
what is left). Candidate pools are rebuilt only when eligibility or the
mesh changes, so one selection costs O(1) for p2c-ewma whatever the mesh
size; only a domain with a breaker that is not closed pays for a scan of
its candidates.
"""

from __future__ import annotations

import math

import trio

from .._exceptions import CircuitOpen
from .._request import Request
from .._shaping import Shaper
from ._circuits import Circuits
from ._geo import GeoRouter
from ._members import DIRECT_FALLBACK, Members
from ._pushback import NodePushbacks
from ._sessions import Sessions, session_of
from ._strategies import Strategy
from ._types import NodeState

__all__ = ["NodesBusy", "Pools", "Selector"]


class NodesBusy(CircuitOpen):
    """Every node is at its per-node rate for the request's domain, or asked
    to be left alone (its own 429/503 and Retry-After): the request waits in
    the frontier, like one no breaker admits."""

    kind = "rate_limited"


class Pools:
    """The candidate nodes per region, cached until eligibility changes.

    Args:
        members: the mesh (and its health tracker).
        circuits: breakers whose open nodes leave every pool (None: none).
        geo: the request's region and the fallback order.
    """

    __slots__ = ("_circuits", "_geo", "_members", "_pools", "_version", "eligible_names")

    def __init__(self, members: Members, circuits: Circuits | None, geo: GeoRouter) -> None:
        self._members = members
        self._circuits = circuits
        self._geo = geo
        self._pools: dict[str, list[NodeState]] = {}
        self._version = (-1, -1, -1)
        self.eligible_names: frozenset[str] = frozenset()

    def refresh(self) -> bool:
        """Apply what time and the mesh changed; True if the pools did."""
        circuits = self._circuits
        if circuits is not None:
            circuits.refresh(trio.current_time())
        version = (
            self._members.health.version,
            self._members.version,
            circuits.version if circuits is not None else 0,
        )
        if version == self._version:
            return False
        self._version = version
        self._pools.clear()
        self.eligible_names = frozenset(n.name for n in self._members.health.eligible())
        return True

    def region_of(self, request: Request, host: str) -> str:
        return self._geo.region_for(host, request.region)

    def pool_for(self, region: str) -> list[NodeState]:
        pool = self._pools.get(region)
        if pool is None:
            pool = self._pools[region] = self._compute(region)
        return pool

    def _compute(self, region: str) -> list[NodeState]:
        eligible = self._members.health.eligible()
        if not eligible:
            # Nothing passes its checks: use the whole mesh rather than stall
            # (the failures then show which nodes are really gone).
            eligible = self._members.states()
        circuits = self._circuits
        if circuits is not None:
            # An open node breaker takes its node out of every region, so a
            # region whose nodes are all open falls back by the region order.
            eligible = [n for n in eligible if not circuits.node_out(n.name)]
        if not region or not eligible:
            return eligible
        for r in self._geo.order(region, self._members.regions):
            pool = [n for n in eligible if n.spec.region in (r, "")]
            if pool:
                return pool
        return eligible


class Selector:
    """Runs the selection policies for one request, and tells the
    dispatcher how long a domain no node can serve must wait.

    Args:
        members: the mesh.
        pools: its candidates per region.
        sessions: where sessions stick.
        strategy: the last policy.
        circuits: breakers (None: none).
        pushbacks: nodes that asked to be left alone.
        node_rates: per-(node, domain) rates (None: none).
        direct_fallback: when no node can serve a domain, send directly.
    """

    __slots__ = (
        "_circuits",
        "_direct_fallback",
        "_members",
        "_pools",
        "_pushbacks",
        "_rates",
        "_sessions",
        "_strategy",
    )

    def __init__(
        self,
        members: Members,
        pools: Pools,
        sessions: Sessions,
        strategy: Strategy,
        *,
        circuits: Circuits | None,
        pushbacks: NodePushbacks,
        node_rates: Shaper | None,
        direct_fallback: bool,
    ) -> None:
        self._members = members
        self._pools = pools
        self._sessions = sessions
        self._strategy = strategy
        self._circuits = circuits
        self._pushbacks = pushbacks
        self._rates = node_rates
        self._direct_fallback = direct_fallback

    def refresh(self) -> None:
        if self._pools.refresh():
            self._sessions.repool()

    def choose(
        self, request: Request, host: str, exclude: frozenset[str] = frozenset()
    ) -> tuple[NodeState, bool, bool]:
        """See :meth:`Balancer.choose`."""
        self.refresh()
        pools = self._pools
        region = pools.region_of(request, host)
        pool = pools.pool_for(region)
        circuits = self._circuits
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
                for n in pools.pool_for("")
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
        rates = self._rates
        if session is None and rates is not None and rates.limits(host):
            pool = self._under_rate(request, host, pool, now)
        if session is not None:
            node, moved = self._sessions.choose(session, host, region, pool, exclude)
            return node, moved, fell_back
        return self._strategy.pick(pool, host), False, fell_back

    def _under_rate(
        self, request: Request, host: str, pool: list[NodeState], now: float
    ) -> list[NodeState]:
        """A per-node rate: only nodes whose pair is under it, from the
        whole mesh if the region's are all at it, as blocked_until() counts
        them (a session keeps its node and waits for it in acquire() instead)."""
        rates, circuits, pushbacks = self._rates, self._circuits, self._pushbacks
        assert rates is not None
        under = [n for n in pool if rates.node_wait(n.name, host, now) <= 0]
        if not under:
            # exclude is a preference, as everywhere: not a reason to wait.
            under = [
                n
                for n in self._pools.pool_for("")
                if rates.node_wait(n.name, host, now) <= 0
                and not pushbacks.paused(n.name, now)
                and (circuits is None or circuits.admits(n.name, host, now))
            ]
        if not under:
            raise NodesBusy(f"every node is at its rate for {host}", request=request)
        return under

    def _admitted(
        self, pool: list[NodeState], host: str, exclude: frozenset[str]
    ) -> tuple[list[NodeState], frozenset[str]]:
        """The nodes of ``pool`` whose breakers admit a request to ``host``
        (else those of the whole mesh, as a region with all its nodes open
        falls back), and ``exclude`` grown by the ones that do not (so a
        session leaves a node that cannot serve it)."""
        circuits = self._circuits
        assert circuits is not None
        now = trio.current_time()
        admitted = [n for n in pool if circuits.admits(n.name, host, now)]
        if not admitted:
            admitted = [n for n in self._pools.pool_for("") if circuits.admits(n.name, host, now)]
        # Every node that cannot take it (in this region or not, open or not)
        # is excluded, so a session held by one moves.
        names = {n.name for n in admitted}
        exclude = exclude | {name for name in self._members.nodes if name not in names}
        return admitted, exclude

    def _fall_back_direct(self, request: Request, host: str) -> NodeState:
        """The direct fallback node, if allowed and admitted, else raise."""
        circuits = self._circuits
        assert circuits is not None
        if self._direct_fallback:
            direct = self._members.direct_node()
            if circuits.admits(DIRECT_FALLBACK, host, trio.current_time()):
                return direct.state
        raise CircuitOpen(
            f"no node can serve {host} now: their circuit breakers are open", request=request
        )

    # -- when a held domain may go -------------------------------------------

    def _names(self) -> list[str]:
        return [n.name for n in self._pools.pool_for("")] or list(self._members.nodes)

    def blocked_until(self, host: str) -> tuple[float, bool]:
        """See :meth:`Balancer.blocked_until`."""
        circuits, rates = self._circuits, self._rates
        troubled = circuits is not None and not circuits.trouble_free(host)
        limited = rates is not None and rates.limits(host)
        now = trio.current_time()
        if self._pushbacks.active(now):
            return self._blocked_by_pushback(host, now), False
        if not (troubled or limited):
            return -math.inf, False
        self.refresh()
        pool = self._pools.pool_for("")
        if not limited:
            assert circuits is not None
            if len(pool) > circuits.troubled_count(host):
                # Some node has neither breaker open or half-open: no scan.
                return now, False
        # Every node breaker open: wait for the first to half-open.
        names: list[str] = [n.name for n in pool] or list(self._members.nodes)
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
        self.refresh()
        circuits, rates = self._circuits, self._rates
        limited = rates is not None and rates.limits(host)
        first = refused = math.inf  # refused: when breakers admit some node
        for name in self._names():
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
        """See :meth:`Balancer.pushed_back_until`."""
        now = trio.current_time()
        return min((self._pushbacks.until(name) for name in self._names()), default=now)
