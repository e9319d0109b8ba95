"""Slot accounting: each node's connection slots, and the leases that hold them.

:meth:`Slots.acquire` chooses a node and takes one of its slots, waiting
while every candidate is at its ``max_connections``, while a session's node
is at its per-node rate, or while it asked to be left alone. A lease given
back (or a breaker or mesh change) wakes the waiters.
"""

from __future__ import annotations

import trio

from .._exceptions import CircuitOpen
from .._request import Request
from .._shaping import Shaper
from .._util._tally import RateWaits
from ._circuits import Circuits, Permits
from ._members import Members, MeshNode
from ._pushback import NodePushbacks
from ._select import Pools, Selector
from ._sessions import session_of
from ._strategies import Strategy
from ._types import NodeState

__all__ = ["Lease", "Slots"]

# Picks tried before scanning the pool for a node with a free slot.
_PICKS_BEFORE_SCAN = 3


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
        node: MeshNode,
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


def has_room(state: NodeState) -> bool:
    limit = state.spec.max_connections
    return not limit or state.in_flight < limit


class Slots:
    """Takes and gives back nodes' connection slots.

    Args:
        members: the mesh.
        pools: its candidates per region.
        selector: chooses the node.
        strategy: picks among nodes with room.
        circuits: breakers, whose permits a lease holds (None: none).
        pushbacks: nodes that asked to be left alone.
        node_rates: per-(node, domain) rates (None: none).
        lot: where acquirers wait for a slot (woken by whoever frees one).
    """

    __slots__ = (
        "_circuits",
        "_lot",
        "_members",
        "_pools",
        "_pushbacks",
        "_rates",
        "_selector",
        "_strategy",
        "direct_fallbacks",
        "rate_waits",
        "region_fallbacks",
    )

    def __init__(
        self,
        members: Members,
        pools: Pools,
        selector: Selector,
        strategy: Strategy,
        *,
        circuits: Circuits | None,
        pushbacks: NodePushbacks,
        node_rates: Shaper | None,
        lot: trio.lowlevel.ParkingLot,
    ) -> None:
        self._members = members
        self._pools = pools
        self._selector = selector
        self._strategy = strategy
        self._circuits = circuits
        self._pushbacks = pushbacks
        self._rates = node_rates
        self._lot = lot
        self.rate_waits = RateWaits()  # a session's waits for its node's rate
        self.direct_fallbacks = 0
        self.region_fallbacks = 0

    def wake(self) -> None:
        """Something changed (a slot, a breaker, the mesh): waiters look again."""
        self._lot.unpark_all()

    async def acquire(self, request: Request, host: str, exclude: frozenset[str]) -> Lease:
        """See :meth:`Balancer.acquire`."""
        choose, rates, pushbacks = self._selector.choose, self._rates, self._pushbacks
        while True:
            for _ in range(_PICKS_BEFORE_SCAN):
                state, moved, fell_back = choose(request, host, exclude)
                if rates is not None:
                    # A session's node at its per-node rate: wait for it,
                    # then choose again (its node may have changed).
                    wait = rates.node_wait(state.name, host, trio.current_time())
                    if wait > 0:
                        await trio.sleep(wait)
                        self.rate_waits.add("node_rate", wait)
                        break
                # A session's node that pushed back: wait for it, as for its rate.
                wait = pushbacks.until(state.name) - trio.current_time()
                if wait > 0:
                    await trio.sleep(wait)
                    self.rate_waits.add("node_rate", wait)
                    break
                if has_room(state):
                    return self.lease(state, host, moved, fell_back, exclude)
            else:
                # Unlucky picks, or every node full: any room before waiting?
                lease = self._any_room(request, host, fell_back, exclude)
                if lease is not None:
                    return lease
                await self._lot.park()

    def _any_room(
        self, request: Request, host: str, fell_back: bool, exclude: frozenset[str]
    ) -> Lease | None:
        """A lease on any candidate with a free slot (not for a session,
        which must keep its node), else None."""
        region = self._pools.region_of(request, host)
        circuits, now = self._circuits, trio.current_time()
        room = [
            n
            for n in self._pools.pool_for(region)
            if n.name not in exclude
            and has_room(n)
            and not self._pushbacks.paused(n.name, now)
            and (circuits is None or circuits.admits(n.name, host, now))
        ]
        rates = self._rates
        if room and rates is not None and rates.limits(host):
            room = [n for n in room if rates.node_wait(n.name, host, now) <= 0]
        if room and session_of(request) is None:
            state = self._strategy.pick(room, host)
            return self.lease(state, host, False, fell_back, exclude)
        return None

    def lease(
        self, state: NodeState, host: str, moved: bool, fell_back: bool, exclude: frozenset[str]
    ) -> Lease:
        """Take a slot of the node ``state`` (chosen for ``host``)."""
        node = self._members.named(state.name)
        assert node is not None
        permits = None
        if self._circuits is not None:
            permits = self._circuits.acquire(state.name, host, trio.current_time())
            if permits is None:  # cannot happen: choose() checked, nothing ran since
                raise CircuitOpen(f"{state.name}: circuit breaker open for {host}")
        if self._rates is not None:
            self._rates.node_reserve(state.name, host, trio.current_time())
        state.in_flight += 1
        node.requests += 1
        if node is self._members.direct:
            self.direct_fallbacks += 1
        elif fell_back and not exclude:
            self.region_fallbacks += 1  # once per request, not per attempt
        return Lease(node, host, moved, fell_back, permits)

    def give_back(self, lease: Lease) -> None:
        """Free the lease's slot (its permits are the learner's to record)."""
        lease.node.in_flight -= 1
        self._lot.unpark_all()

    def abandon(self, lease: Lease) -> None:
        """Give a slot back without learning anything (the fetch was cancelled)."""
        lease.node.in_flight -= 1
        if lease.permits is not None:
            lease.permits.release()
        self._lot.unpark_all()
