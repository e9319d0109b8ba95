"""What the statistics say about each node: the record the balancer fills in
(:class:`NodeStats`) and the terms it is judged in.

The balancer produces these and the statistics, live status and metrics
report them, so they live here, below both: reporting a node never needs
the balancer itself.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "SHARE_MIN_REQUESTS",
    "SHARE_TOLERANCE",
    "SHARE_TOLERANCE_RELATIVE",
    "TARGET_FAILURE_KINDS",
    "NodeHealth",
    "NodeStats",
]

# A node's share of the requests is uneven when it strays from its weight's
# share by more than SHARE_TOLERANCE (points) and SHARE_TOLERANCE_RELATIVE of
# that share, judged once the mesh has served more than SHARE_MIN_REQUESTS.
SHARE_TOLERANCE = 0.05
SHARE_TOLERANCE_RELATIVE = 0.25
SHARE_MIN_REQUESTS = 100

TARGET_FAILURE_KINDS = frozenset(
    {"connect_error", "connect_timeout", "read_timeout", "connection_error", "total_timeout"}
)
"""``FetchError.kind`` values that count against a (node, domain) breaker:
the error kinds any attempt through a node can end with."""

NodeHealth = Literal["up", "down", "slow-start"]
"""A node's health as the health checks see it."""


class NodeStats(msgspec.Struct, frozen=True):
    """Per-node figures for the final stats."""

    name: str
    kind: str
    region: str
    weight: float
    state: str
    requests: int
    errors: dict[str, int]
    """Failed fetches through the node, by kind (HTTP statuses are the
    target's answers and are counted per crawl, not here)."""
    bans: int
    """Responses through the node that looked like a ban (block pages, 403)."""
    breaker: str
    """The node's circuit breaker: closed, open or half-open."""
    share: float
    """This node's share of all requests sent through the mesh."""
    expected_share: float
    """Its weight's share of the mesh's total weight."""
    p50_ms: float
    p95_ms: float
    in_flight: int
    uneven: bool
    """The share strays from the weight's share by more than 5 points and a
    quarter of that share (not judged for round-robin, which ignores weights)."""
    endpoint: str = ""
    """Where the node is: a proxy's or node's URL, an API's template
    (credentials masked); "" for a direct node."""
    retries: int = 0
    """Requests retried after an attempt through this node failed."""
    breaker_trips: int = 0
    """Times the node's circuit breaker opened."""
    pair_breaker_trips: int = 0
    """Times one of its (node, domain) circuit breakers opened."""
