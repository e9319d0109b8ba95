"""What observation reads of the balancer: small protocols, so statistics,
live status and metrics never import the stage they report on.

:class:`~crawlmesh._balancer._balancer.Balancer` implements them; a test can
hand in anything with these attributes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Protocol

from .._util._tally import NodeTally
from ._nodes import NodeStats

__all__ = ["CircuitCounts", "MeshSource", "NodeSource"]


class NodeSource(Protocol):
    """The per-node figures of a mesh (what the live status shows)."""

    def node_stats(self, top: int | None = None) -> list[NodeStats]:
        """Each node's figures (the ``top`` busiest only, when given)."""
        ...

    @property
    def node_count(self) -> int:
        """Nodes in the mesh."""
        ...


class CircuitCounts(Protocol):
    """What the circuit breakers counted."""

    @property
    def transitions(self) -> Counter[str]:
        """Breaker changes by scope and new state, e.g. ``pair:open``."""
        ...

    @property
    def banned(self) -> Counter[str]:
        """Responses that looked like a ban, by node."""
        ...

    @property
    def domain_trips(self) -> Counter[str]:
        """(node, domain) breaker openings, by domain."""
        ...


class MeshSource(NodeSource, Protocol):
    """A mesh as the final stats and the metrics report it."""

    @property
    def strategy_name(self) -> str: ...

    @property
    def sessions_moved(self) -> int: ...

    @property
    def sessions_split(self) -> Collection[str]: ...

    @property
    def region_fallbacks(self) -> int: ...

    @property
    def direct_fallbacks(self) -> int: ...

    @property
    def circuits(self) -> CircuitCounts | None:
        """The breakers' counts (None when the mesh has no breakers)."""
        ...

    def tallies(self) -> Iterable[tuple[str, NodeTally]]:
        """Each node's request-path counters."""
        ...
