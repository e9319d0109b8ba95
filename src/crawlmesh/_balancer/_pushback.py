"""Nodes that pushed back: each is left alone until its Retry-After ends.

A ``crawlmesh node`` that refuses a request of its own accord (429
``rate_limited``, 503 ``overloaded`` or ``draining``) says how long to
wait. The balancer sends it nothing until then, for any domain: the limit
it hit (its queue, this client's rate or in-flight cap) is the node's, not
a domain's. Times are ``trio.current_time()``.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_HOLD", "NodePushbacks"]

DEFAULT_HOLD = 1.0
"""Seconds a node that pushed back without a usable Retry-After is left alone."""


class NodePushbacks:
    """Until when each node that pushed back is left alone."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def push_back(self, node: str, until: float) -> None:
        """Send ``node`` nothing before ``until`` (a later pause stands)."""
        if until > self._until.get(node, -math.inf):
            self._until[node] = until

    def active(self, now: float) -> bool:
        """Whether some node is left alone at ``now`` (ended pauses are dropped)."""
        until = self._until
        if until:
            for node in [n for n, t in until.items() if t <= now]:
                del until[node]
        return bool(until)

    def until(self, node: str) -> float:
        """When ``node`` may be sent requests again (-inf: it may now)."""
        return self._until.get(node, -math.inf)

    def paused(self, node: str, now: float) -> bool:
        return self._until.get(node, -math.inf) > now
