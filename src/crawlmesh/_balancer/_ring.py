"""Session affinity: consistent hashing with bounded loads.

A session (a cookie jar, a login) should keep its egress node: sites tie
sessions to the client's address. :class:`AffinityRing` places each new
session by consistent hashing with bounded loads (Mirrokni, Thorup and
Zadimoghaddam, 2018) and then remembers the placement in a stick table, so
the ring decides only where a session *starts*.

Low layer: imports nothing from the engine, spiders, settings or the CLI.
"""

from __future__ import annotations

import hashlib
import math
import struct
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Sequence

import trio

from ._types import NodeState

__all__ = ["AffinityRing"]

# A ring point is one int: the 64-bit hash above, the owner's index below, so
# one sorted list of ints holds the ring (bisect and sort stay in C) and equal
# hashes still order deterministically.
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EIGHT_WORDS = struct.Struct(">8Q")


def _hash64(data: str) -> int:
    # blake2b is in the standard library, fast, and the same in every process
    # and Python version (unlike hash()), so placements survive restarts.
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


def _node_points(name: str, index: int, count: int) -> list[int]:
    """The first ``count`` ring points of a node: a prefix of one fixed sequence."""
    hashes: list[int] = []
    for block in range((count + 7) // 8):
        # One 64-byte digest gives eight points: building a 10,000-node ring
        # hashes 3.5 times faster than with one digest per point.
        digest = hashlib.blake2b(f"{name}\x00{block}".encode(), digest_size=64).digest()
        hashes += _EIGHT_WORDS.unpack(digest)
    return [h << _INDEX_BITS | index for h in hashes[:count]]


class _Stick:
    __slots__ = ("index", "last_used")

    def __init__(self, index: int, last_used: float) -> None:
        self.index = index
        self.last_used = last_used


class AffinityRing:
    """Sticky session placement over a weighted hash ring.

    Placement: a new session hashes to a point on the ring and walks clockwise
    to the first node whose live sessions, counting the new one, stay within
    ``ceil((1 + eps) * live * weight / total_weight)``. No node is therefore
    handed a session that takes it above ``1 + eps`` times its fair share.
    Each node holds ``points_per_node * weight / min_weight`` points
    (at most ``max_points_per_node``), so session shares follow ``spec.weight``.

    What moves, exactly (counted in :attr:`moved`):

    * a node leaving (:meth:`remove_node`, or :meth:`set_nodes` without it):
      its sessions, and only those, are placed again as above;
    * nodes joining: nothing. Moving a live session loses its cookies with the
      site, so a new node fills from new sessions: those landing on its arcs,
      plus those turned away by older nodes above the new, lower bound;
    * :meth:`rebalance`: sessions of nodes above the bound, least recently used
      first, until no node is above it. Only when the caller asks.

    A session ends with :meth:`release`, or after ``ttl`` seconds without an
    :meth:`assign` or :meth:`lookup`. Ends do not move other sessions either,
    so after many of them a node can sit above the (shrunken) bound until
    :meth:`rebalance` or until its own sessions end.

    Nodes are identified by :attr:`NodeState.index`; the node behind an index
    must keep its name and weight.

    Costs: :meth:`lookup` and a sticky :meth:`assign` are O(1); placing a
    session is O(log points) plus a walk that is short while ``eps`` is not
    tiny. :meth:`set_nodes` scans the sessions when a node leaves; a node or
    two joining or leaving edits the ring in place, anything more (or a new
    lightest weight) sorts all points again: about a second for 10,000 nodes,
    see ``bench/bench_balancer.py``.
    """

    def __init__(
        self,
        *,
        eps: float = 0.25,
        ttl: float = 600.0,
        now: Callable[[], float] = trio.current_time,
        points_per_node: int = 100,
        max_points_per_node: int = 1000,
    ) -> None:
        """Create an empty ring.

        Args:
            eps: how far above its fair share of sessions a node may be placed.
            ttl: seconds a session stays without being assigned or looked up.
            now: the clock, in seconds; virtual time under ``MockClock``.
            points_per_node: ring points of the lightest node.
            max_points_per_node: cap on any node's points.

        Raises:
            ValueError: a parameter out of range.
        """
        if eps <= 0 or ttl <= 0 or points_per_node < 1 or max_points_per_node < points_per_node:
            raise ValueError(
                "AffinityRing needs eps > 0, ttl > 0, points_per_node >= 1"
                " and max_points_per_node >= points_per_node"
            )
        self._eps = eps
        self._ttl = ttl
        self._now = now
        self._points_per_node = points_per_node
        self._max_points = max_points_per_node
        self._nodes: dict[int, NodeState] = {}
        self._share: dict[int, float] = {}  # (1 + eps) * weight / total weight
        self._points: dict[int, list[int]] = {}  # each node's points, kept for rebuilds
        self._ring: list[int] = []
        self._loads: dict[int, int] = {}
        # Ordered by last use, so expiry only ever looks at the front.
        self._sticks: OrderedDict[str, _Stick] = OrderedDict()
        self._moved = 0

    @property
    def moved(self) -> int:
        """Sessions placed again because their node left, or by :meth:`rebalance`."""
        return self._moved

    def set_nodes(self, nodes: Sequence[NodeState]) -> None:
        """Make ``nodes`` the ring's nodes, identified by ``index``.

        Sessions of nodes no longer present are placed again; every other
        session stays where it is.

        Args:
            nodes: the nodes sessions may be placed on; may be empty.
        """
        self._expire(self._now())
        new = {node.index: node for node in nodes}
        gone = self._nodes.keys() - new.keys()
        self._nodes = new
        dropped: list[int] = []
        for index in gone:
            dropped += self._points.pop(index)
            del self._loads[index]
        for index in new:
            self._loads.setdefault(index, 0)
        self._build(dropped)
        if not new:
            self._sticks.clear()  # nowhere to go: every session ends
            return
        if not gone:
            return
        # In order of last use, each against the whole live total (orphans
        # included): the same bound a new session gets.
        orphans = [(s, stick) for s, stick in self._sticks.items() if stick.index in gone]
        live = len(self._sticks)
        for session, stick in orphans:
            stick.index = self._place(session, live)
            self._loads[stick.index] += 1
        self._moved += len(orphans)

    def remove_node(self, node: NodeState) -> None:
        """Take ``node`` off the ring; only its sessions are placed again."""
        self.set_nodes([n for n in self._nodes.values() if n.index != node.index])

    def assign(self, session: str) -> NodeState:
        """The node of ``session``: its sticky node if live, else a newly placed one.

        Refreshes the session's idle timer.

        Raises:
            LookupError: the ring has no nodes.
        """
        now = self._now()
        self._expire(now)
        stick = self._sticks.get(session)
        if stick is not None:
            stick.last_used = now
            self._sticks.move_to_end(session)
            return self._nodes[stick.index]
        if not self._nodes:
            raise LookupError("the affinity ring has no nodes")
        index = self._place(session, len(self._sticks) + 1)
        self._sticks[session] = _Stick(index, now)
        self._loads[index] += 1
        return self._nodes[index]

    def lookup(self, session: str) -> NodeState | None:
        """The node of a live ``session`` (refreshing its idle timer), else None."""
        now = self._now()
        self._expire(now)
        stick = self._sticks.get(session)
        if stick is None:
            return None
        stick.last_used = now
        self._sticks.move_to_end(session)
        return self._nodes[stick.index]

    def release(self, session: str) -> None:
        """End ``session``; a session that is not live is ignored."""
        stick = self._sticks.pop(session, None)
        if stick is not None:
            self._loads[stick.index] -= 1

    def pin(self, session: str, node: NodeState) -> None:
        """Stick ``session`` to ``node`` (a node of the ring), e.g. after its
        own node failed mid-request and the caller chose another.

        Raises:
            KeyError: ``node`` is not on the ring.
        """
        if node.index not in self._nodes:
            raise KeyError(f"node {node.name!r} is not on the ring")
        self.release(session)
        self._sticks[session] = _Stick(node.index, self._now())
        self._loads[node.index] += 1

    def rebalance(self) -> int:
        """Move sessions off nodes above the bound, least recently used first.

        Returns:
            How many sessions moved.
        """
        self._expire(self._now())
        live = len(self._sticks)
        over = {i for i, load in self._loads.items() if load > self._cap(i, live)}
        moves = 0
        for session, stick in self._sticks.items():
            if not over:
                break
            if stick.index not in over:
                continue
            old = stick.index
            self._loads[old] -= 1
            if self._loads[old] <= self._cap(old, live):
                over.discard(old)
            # The old node is at or above its bound, so the walk passes it by.
            stick.index = self._place(session, live)
            self._loads[stick.index] += 1
            moves += 1
        self._moved += moves
        return moves

    def loads(self) -> dict[str, int]:
        """Live sessions per node name."""
        self._expire(self._now())
        return {node.name: self._loads[index] for index, node in self._nodes.items()}

    def _cap(self, index: int, live: int) -> int:
        return math.ceil(self._share[index] * live)

    def _place(self, session: str, live: int) -> int:
        """The first node clockwise from ``session`` with room, ``live`` sessions in all."""
        ring = self._ring
        size = len(ring)
        loads, share = self._loads, self._share
        start = bisect_left(ring, _hash64(session) << _INDEX_BITS)
        # The caps sum to at least (1 + eps) * live > live - 1 sessions placed
        # elsewhere, so some node has room and one lap always ends the walk.
        for k in range(start, start + size):
            index = ring[k % size] & _INDEX_MASK
            if loads[index] < math.ceil(share[index] * live):
                return index
        raise AssertionError("no node with room: the load bound is broken")

    def _build(self, dropped: list[int]) -> None:
        """Recompute shares and ring points after a change of nodes."""
        nodes = self._nodes.values()
        total = sum(node.spec.weight for node in nodes)
        lightest = min((node.spec.weight for node in nodes), default=1.0)
        self._share = {n.index: (1 + self._eps) * n.spec.weight / total for n in nodes}
        added: list[int] = []
        recounted = False
        for node in nodes:
            count = min(
                self._max_points,
                max(1, round(self._points_per_node * node.spec.weight / lightest)),
            )
            points = self._points.get(node.index)
            if points is not None and len(points) == count:
                continue
            recounted = recounted or points is not None
            points = _node_points(node.name, node.index, count)
            self._points[node.index] = points
            added += points
        ring = self._ring
        if recounted or 8 * (len(added) + len(dropped)) > len(ring):
            self._ring = sorted(p for index in self._nodes for p in self._points[index])
        else:
            # A node or two joining or leaving a big mesh: editing the sorted
            # list in place is ~50 times cheaper than sorting it again.
            for point in dropped:
                del ring[bisect_left(ring, point)]
            for point in added:
                insort(ring, point)

    def _expire(self, now: float) -> None:
        sticks = self._sticks
        deadline = now - self._ttl
        while sticks:
            session, stick = next(iter(sticks.items()))
            if stick.last_used > deadline:
                break
            del sticks[session]
            self._loads[stick.index] -= 1
