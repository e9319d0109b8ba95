"""The demo's in-process nodes and the balancer's health checks."""

from __future__ import annotations

import time

import trio

from crawlmesh import HealthSettings
from crawlmesh._balancer import build_balancer, probe_node
from crawlmesh._balancer._health import _verdict
from crawlmesh._cli import open_demo_nodes
from crawlmesh._settings import load_settings


def _burn(seconds: float) -> None:
    """Keep a CPU busy, as the crawl and the site keep the demo's process."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


async def test_a_busy_demo_process_does_not_mark_its_nodes_down() -> None:
    async with open_demo_nodes() as specs:
        # The process busier than cpu_max (two threads, two cores) with
        # work that is not the nodes': the crawl's and the site's, in a demo.
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(trio.to_thread.run_sync, _burn, 1.3)
        balancer = build_balancer(load_settings([]), specs)
        try:
            probes = [await probe_node(balancer, state) for state in balancer.nodes]
        finally:
            await balancer.aclose()
    assert [(p.ok, p.status, p.cpu_usage) for p in probes] == [(True, "healthy", None)] * 3
    assert [_verdict(p, HealthSettings()) for p in probes] == [""] * 3
