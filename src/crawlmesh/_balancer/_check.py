"""``crawlmesh nodes check``: probe every node once and report."""

from __future__ import annotations

import msgspec
import trio

from .._settings import Settings
from ._build import build_balancer, probe_node

__all__ = ["NodeCheck", "check_nodes"]


class NodeCheck(msgspec.Struct, frozen=True):
    name: str
    kind: str
    region: str
    weight: float
    ok: bool
    latency_ms: float
    detail: str


async def check_nodes(settings: Settings) -> list[NodeCheck]:
    """Probe each node of the configured mesh once, concurrently."""
    balancer = build_balancer(settings)
    timeout = settings.balancer.health.timeout
    results: dict[str, NodeCheck] = {}

    async def one(index: int) -> None:
        state = balancer.nodes[index]
        spec = state.spec
        with trio.move_on_after(timeout) as scope:
            probe = await probe_node(balancer, state)
        if scope.cancelled_caught:
            ok, latency, detail = False, timeout, f"no answer within {timeout:g} s"
        else:
            ok, latency, detail = probe.ok, probe.latency, probe.detail
            if ok and probe.status:
                cpu = "not measured" if probe.cpu_usage is None else probe.cpu_usage
                detail = f"status {probe.status}, cpu {cpu}, queue {probe.queue_size}"
        results[spec.name] = NodeCheck(
            spec.name, spec.kind, spec.region, spec.weight, ok, latency * 1000, detail
        )

    try:
        async with trio.open_nursery() as nursery:
            for i in range(len(balancer.nodes)):
                nursery.start_soon(one, i)
    finally:
        await balancer.aclose()
    return [results[n.name] for n in balancer.nodes]
