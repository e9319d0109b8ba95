"""Keeping a mesh current while a crawl runs: health checks and node-file reloads."""

from __future__ import annotations

import os
from functools import partial

import structlog
import trio

from .._exceptions import CrawlmeshError
from .._settings import Settings
from ._balancer import Balancer
from ._build import health_config, mesh_specs, probe_node
from ._health import open_health_checks

__all__ = ["reload_nodes", "run_mesh_upkeep"]

log = structlog.get_logger("crawlmesh.balancer")

_RETIRE_INTERVAL = 5.0


def reload_nodes(balancer: Balancer, settings: Settings) -> bool:
    """Re-read the node file into ``balancer``; True if the mesh changed.

    A file that cannot be read or does not validate is refused with a clear
    message, and the mesh in force stays.
    """
    if not settings.balancer.nodes_file:
        return False
    try:
        specs = mesh_specs(settings)
        if [n.spec for n in balancer.nodes] == list(specs):
            return False
        balancer.set_nodes(specs)  # builds every new transport before swapping
    except CrawlmeshError as exc:
        log.error("node file refused; keeping the current mesh", error=str(exc))
        return False
    log.info("node file reloaded", nodes=[s.name for s in specs])
    return True


def _mtime(path: str) -> tuple[int, int] | None:
    # Modification time and size: two writes within one timestamp tick that
    # change the length are still seen.
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


async def run_mesh_upkeep(balancer: Balancer, settings: Settings) -> None:
    """Run active health checks, and reload the node file when it changes,
    until cancelled."""
    config = health_config(settings)
    async with open_health_checks(balancer.health, partial(probe_node, balancer), config):
        path = settings.balancer.nodes_file
        interval = settings.balancer.reload_interval
        watch = bool(path and interval)
        last = _mtime(path) if watch else None
        while True:
            # No portable file-change event exists; a stat every few seconds is
            # cheap. The same loop closes transports of nodes a reload removed.
            await trio.sleep(interval if watch else _RETIRE_INTERVAL)
            await balancer.close_retired()
            if watch:
                now = _mtime(path)
                if now != last:
                    last = now
                    reload_nodes(balancer, settings)
