"""Progress on stderr while a crawl runs: plain log lines, or a live status
block redrawn in place on a terminal.

Both only read counters the stages keep anyway (see :mod:`._status`):
nothing is added to the request path.

Which one a command shows (:func:`choose_progress`): the live block when
stderr is a terminal and the logs are for people (not ``--log-format
json``), unless the items are printed on that same terminal (the block would
be drawn among them, and erasing it would erase them); plain lines
otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

import structlog
import trio

from .._exceptions import UsageError
from .._util._console import Console
from .._util._console import console as stderr_console
from ._sources import NodeSource
from ._status import MAX_NODES, RateMeter, node_summary, render_status, take_status

if TYPE_CHECKING:
    from ._stats import StatsCollector

__all__ = [
    "LiveCrawl",
    "ProgressMode",
    "choose_progress",
    "report_progress",
    "show_live_status",
]

log = structlog.get_logger("crawlmesh.engine")

ProgressMode = Literal["auto", "live", "lines", "none"]

REFRESH = 0.5
"""Seconds between two drawings of the live block."""


class LiveCrawl(Protocol):
    """What the live block reads of a running crawl (an
    :class:`~crawlmesh.Engine`)."""

    @property
    def stats(self) -> StatsCollector: ...

    @property
    def balancer(self) -> NodeSource | None: ...

    def backlog(self) -> tuple[int, int]:
        """(requests queued, requests in flight)."""
        ...


async def report_progress(
    interval: float,
    stats: StatsCollector,
    queues: Callable[[], tuple[int, int]],
    balancer: NodeSource | None = None,
) -> None:
    """Log pages, rate, items, queued, in-flight and errors (and with a node
    mesh, the busiest nodes' shares) every ``interval`` seconds until
    cancelled; nothing if ``interval`` is 0.

    Args:
        interval: seconds between lines.
        stats: the crawl's live counters.
        queues: returns (requests queued, requests in flight).
        balancer: the node mesh, if any.
    """
    if not interval:
        return
    meter = RateMeter(window=interval)
    started = trio.current_time()
    meter.update(started, stats.pages)
    while True:
        await trio.sleep(interval)
        now = trio.current_time()
        status = take_status(
            stats,
            queues(),
            balancer,
            elapsed=now - started,
            pages_per_s=meter.update(now, stats.pages),
        )
        nodes = node_summary(status)
        log.info(
            "progress",
            pages=status.pages,
            pages_per_s=round(status.pages_per_s, 1),
            items=status.items,
            queued=status.queued,
            in_flight=status.in_flight,
            errors=status.errors,
            **({"nodes": nodes} if nodes else {}),
        )


async def show_live_status(
    engine: LiveCrawl, *, refresh: float = REFRESH, console: Console = stderr_console
) -> None:
    """Draw ``engine``'s live status block at the bottom of ``console``
    (stderr) every ``refresh`` seconds until cancelled, then erase it (so it
    is gone when the crawl ends, is interrupted or fails).

    Log lines written meanwhile go above the block (see :class:`Console`).
    """
    meter = RateMeter()
    started = trio.current_time()
    try:
        while True:
            now = trio.current_time()
            status = take_status(
                engine.stats,
                engine.backlog(),
                engine.balancer,
                elapsed=now - started,
                pages_per_s=meter.update(now, engine.stats.pages),
            )
            columns, rows = console.size()
            try:
                console.show(render_status(status, width=columns, height=rows, max_nodes=MAX_NODES))
            except OSError:
                return  # stderr is gone (a closed terminal): crawl on without the block
            await trio.sleep(refresh)
    finally:
        console.clear()


def choose_progress(
    requested: ProgressMode | None,
    *,
    quiet: bool,
    json_logs: bool,
    items_on_stdout: bool,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
) -> Literal["live", "lines", "none"]:
    """Which progress a command shows.

    Args:
        requested: ``--progress`` (None: not given; ``auto`` unless ``quiet``).
        quiet: ``--quiet``.
        json_logs: ``--log-format json``.
        items_on_stdout: the items are written to stdout.

    Raises:
        UsageError: ``live`` asked for while the items are printed on the
            terminal that would show the block.
    """
    if requested is None:
        requested = "none" if quiet else "auto"
    shares_terminal = items_on_stdout and _same_terminal(stdout_fd, stderr_fd)
    if requested == "live":
        if shares_terminal:
            raise UsageError(
                "--progress live: the items are printed on this terminal; "
                "send them elsewhere with -o FILE (or a pipe)"
            )
        return "live"
    if requested != "auto":
        return requested
    if json_logs or shares_terminal or not os.isatty(stderr_fd):
        return "lines"
    return "lines" if os.environ.get("TERM") == "dumb" else "live"


def _same_terminal(a: int, b: int) -> bool:
    try:
        return os.isatty(a) and os.isatty(b) and os.path.samestat(os.fstat(a), os.fstat(b))
    except OSError:
        return False
