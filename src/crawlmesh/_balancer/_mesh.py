"""Keeping a mesh current while a crawl runs: health checks and node-file reloads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import structlog
import trio

from .._exceptions import CrawlmeshError
from .._settings import Settings, load_settings_nodes
from ._balancer import Balancer
from ._build import mesh_specs, probe_node
from ._health import open_health_checks
from ._types import NodeSpec

__all__ = ["reload_nodes", "run_mesh_upkeep"]

log = structlog.get_logger("crawlmesh.balancer")

_RETIRE_INTERVAL = 5.0


def _mesh_file(settings: Settings) -> str:
    """The file the mesh was read from ("" for none): the node file, or the
    settings file whose [[nodes]] are the mesh."""
    return settings.balancer.nodes_file or settings.balancer.nodes_settings_file


def _settings_nodes(settings: Settings) -> Sequence[NodeSpec]:
    return load_settings_nodes(settings.balancer.nodes_settings_file)


def reload_nodes(balancer: Balancer, settings: Settings) -> bool:
    """Re-read the node file (or the settings file's [[nodes]]) into
    ``balancer``; True if the mesh changed.

    A file that cannot be read or does not validate is refused with a clear
    message, and the mesh in force stays.
    """
    path = _mesh_file(settings)
    if not path:
        return False
    try:
        reread = mesh_specs if settings.balancer.nodes_file else _settings_nodes
        specs = reread(settings)
        if [n.spec for n in balancer.nodes] == list(specs):
            return False
        balancer.set_nodes(specs)  # builds every new transport before swapping
    except CrawlmeshError as exc:
        log.error("node file refused; keeping the current mesh", file=path, error=str(exc))
        return False
    log.info("node file reloaded", file=path, nodes=[s.name for s in specs])
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
    config = settings.balancer.health
    async with open_health_checks(balancer.health, partial(probe_node, balancer), config):
        path = _mesh_file(settings)
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
