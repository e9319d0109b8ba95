"""Keeping a mesh current while a crawl runs: health checks and node-file reloads."""

from __future__ import annotations

import os
from functools import partial

import structlog
import trio

from .._exceptions import SettingsError
from .._settings import Settings
from ._balancer import Balancer
from ._build import health_config, mesh_specs, probe_node
from ._health import open_health_checks

__all__ = ["reload_nodes", "run_mesh_upkeep"]

log = structlog.get_logger("crawlmesh.balancer")


def reload_nodes(balancer: Balancer, settings: Settings) -> bool:
    """Re-read the node file into ``balancer``; True if the mesh changed.

    A file that cannot be read or does not validate is refused with a clear
    message, and the mesh in force stays.
    """
    if not settings.balancer.nodes_file:
        return False
    try:
        specs = mesh_specs(settings)
    except SettingsError as exc:
        log.error("node file refused; keeping the current mesh", error=str(exc))
        return False
    if [n.spec for n in balancer.nodes] == list(specs):
        return False
    balancer.set_nodes(specs)
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
        if not path or not interval:
            await trio.sleep_forever()
        last = _mtime(path)
        while True:
            await trio.sleep(interval)
            await balancer.close_retired()
            now = _mtime(path)
            if now != last:
                last = now
                reload_nodes(balancer, settings)
