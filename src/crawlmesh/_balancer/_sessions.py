"""Sessions: which node each session sticks to, and agreeing on it with the
other workers of a distributed crawl.

The stick table (session -> node name, last use) is the authority; the
per-region affinity rings only place sessions it does not hold.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import trio

from .._request import Request
from .._state import MeshShare
from ._members import Members
from ._ring import AffinityRing
from ._strategies import Strategy
from ._types import NodeState

__all__ = ["Sessions", "session_of"]

_MAX_SESSIONS = 100_000

# Places a request the way the selector does: (node, moved, fell back).
Choose = Callable[[Request, str, frozenset[str]], tuple[NodeState, bool, bool]]


def session_of(request: Request) -> str | None:
    """The request's session: ``Request(session=)``, else an X-Session-ID header."""
    if request.session is not None:
        return request.session
    for name, value in (request.headers or {}).items():
        if name.lower() == "x-session-id":
            return value
    return None


class Sessions:
    """The session stick table and its affinity rings.

    Args:
        members: the mesh.
        pool_for: a region's candidate nodes.
        eligible: the names of the nodes that pass their checks, now.
        strategy: places a session its ring cannot.
        ttl: idle seconds after which a session's node is forgotten.
        epsilon: bounded-load slack for placing new sessions.
    """

    __slots__ = (
        "_eligible",
        "_epsilon",
        "_members",
        "_pool_for",
        "_rings",
        "_shared_at",
        "_strategy",
        "_table",
        "_ttl",
        "moved",
        "share",
        "split",
    )

    def __init__(
        self,
        members: Members,
        pool_for: Callable[[str], list[NodeState]],
        eligible: Callable[[], frozenset[str]],
        strategy: Strategy,
        *,
        ttl: float,
        epsilon: float,
    ) -> None:
        self._members = members
        self._pool_for = pool_for
        self._eligible = eligible
        self._strategy = strategy
        self._ttl = ttl
        self._epsilon = epsilon
        self._rings: dict[str, AffinityRing] = {}
        self._table: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # A distributed crawl's shared sessions (None: ours alone).
        self.share: MeshShare | None = None
        self._shared_at: dict[str, float] = {}  # session -> when last stored
        self.moved = 0
        self.split: set[str] = set()

    def repool(self) -> None:
        """The pools changed: each ring places on its region's new pool."""
        for key, ring in self._rings.items():
            ring.set_nodes(self._pool_for(key))

    def clear_rings(self) -> None:
        """The mesh changed: rings are rebuilt on demand (live sessions stay
        in the stick table)."""
        self._rings.clear()

    def _ring_for(self, region: str) -> AffinityRing:
        ring = self._rings.get(region)
        if ring is None:
            ring = AffinityRing(eps=self._epsilon, ttl=self._ttl)
            ring.set_nodes(self._pool_for(region))
            self._rings[region] = ring
        return ring

    def choose(
        self,
        session: str,
        host: str,
        region: str,
        pool: list[NodeState],
        exclude: frozenset[str],
    ) -> tuple[NodeState, bool]:
        """The session's node among ``pool`` and whether it had to move."""
        now = trio.current_time()
        table = self._table
        nodes = self._members.nodes
        held = table.get(session)
        if held is not None and now - held[1] > self._ttl:
            held = None  # expired: a new session as far as placement goes
        if held is not None:
            name = held[0]
            node = nodes.get(name)
            if node is not None and name in self._eligible() and name not in exclude:
                table[session] = (name, now)
                table.move_to_end(session)
                return node.state, False
        # A new session, or its node is gone: place it on the region's ring.
        ring = self._ring_for(region)
        ring.release(session)
        state = ring.assign(session)
        if state.name in exclude or state.name not in nodes:
            state = self._strategy.pick(pool, host)
            ring.pin(session, state)
        moved = held is not None and held[0] != state.name
        if moved:
            assert held is not None
            self._moved(session, held[0], exclude)
        table[session] = (state.name, now)
        table.move_to_end(session)
        while len(table) > _MAX_SESSIONS:
            table.popitem(last=False)
        if moved and self.share is not None:
            self.share.session_moved(session, state.name, self._ttl)
            self._shared_at[session] = now
        return state, moved

    def _moved(self, session: str, old_name: str, exclude: frozenset[str]) -> None:
        if old_name in self._eligible() and old_name not in exclude:
            self.split.add(session)  # cannot happen by construction
        self.moved += 1
        old = self._members.nodes.get(old_name)
        if old is not None:
            old.forget_session(session)  # its cookie jar there is stale now

    async def agree(
        self,
        session: str,
        request: Request,
        host: str,
        exclude: frozenset[str],
        choose: Choose,
        region_of: Callable[[Request, str], str],
    ) -> None:
        """Agree with the other workers on ``session``'s node: the first to
        place it stores its choice, the others adopt it."""
        share = self.share
        assert share is not None
        ttl = self._ttl
        now = trio.current_time()
        held = self._table.get(session)
        if held is not None and now - held[1] <= ttl:
            if now - self._shared_at.get(session, -math.inf) > ttl / 4:
                share.session_moved(session, held[0], ttl)  # still in use
                self._shared_at[session] = now
            return
        state, _, _ = choose(request, host, exclude)  # our placement, held locally
        name = await share.stick(session, state.name, ttl)
        self._shared_at[session] = trio.current_time()
        if len(self._shared_at) > _MAX_SESSIONS:
            self._shared_at.clear()
        node = self._members.nodes.get(name)
        if name == state.name or node is None or name not in self._eligible():
            if name != state.name:  # theirs is gone or out here: ours stands
                share.session_moved(session, state.name, ttl)
            return
        ring = self._ring_for(region_of(request, host))
        ring.release(session)
        ring.pin(session, node.state)
        self._table[session] = (name, trio.current_time())
