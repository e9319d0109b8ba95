"""Reporting: each node's figures for the stats, the live status and the metrics."""

from __future__ import annotations

import heapq
import math

from .._observe import SHARE_MIN_REQUESTS, SHARE_TOLERANCE, SHARE_TOLERANCE_RELATIVE, NodeStats
from .._util._redact import redact
from .._util._tally import NodeTally
from ._circuits import Circuits
from ._members import Members, MeshNode
from ._types import NodeSpec

__all__ = ["node_stats", "tallies"]


def tallies(members: Members) -> list[tuple[str, NodeTally]]:
    """Each node's name and tally (for the metrics), in mesh order."""
    return [(node.state.name, node.tally) for node in members.everyone()]


def node_stats(
    members: Members, circuits: Circuits | None, strategy: str, top: int | None = None
) -> list[NodeStats]:
    """Per-node figures, in mesh order (see :meth:`Balancer.node_stats`)."""
    nodes = members.everyone()
    total = sum(n.requests for n in nodes) or 1
    weight = sum(n.state.spec.weight for n in members.nodes.values()) or 1.0
    weighs = strategy != "round-robin"
    if top is not None:
        nodes = heapq.nlargest(top, nodes, key=lambda n: n.requests)
    return [
        _stats(members, node, circuits, total=total, weight=weight, weighs=weighs) for node in nodes
    ]


def _stats(
    members: Members,
    node: MeshNode,
    circuits: Circuits | None,
    *,
    total: int,
    weight: float,
    weighs: bool,
) -> NodeStats:
    direct = node is members.direct
    breaker = circuits.nodes.peek(node.state.name) if circuits is not None else None
    spec = node.state.spec
    lat = sorted(node.latencies)
    share = node.requests / total
    expected = spec.weight / weight
    return NodeStats(
        name=spec.name,
        kind=spec.kind,
        region=spec.region,
        weight=spec.weight,
        state="fallback" if direct else members.health.state(node.state),
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
        and abs(share - expected) > max(SHARE_TOLERANCE, expected * SHARE_TOLERANCE_RELATIVE),
        endpoint=_endpoint(spec),
        breaker_trips=circuits.node_trips[spec.name] if circuits is not None else 0,
        pair_breaker_trips=circuits.pair_trips[spec.name] if circuits is not None else 0,
    )


def _endpoint(spec: NodeSpec) -> str:
    """Where a node sends requests, safe to show (credentials masked)."""
    return redact(spec.template or spec.url)  # an api node's is its template


def _percentile_ms(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1] * 1000, 2)
