"""What progress reports show: a snapshot of a running crawl's counters, and
its renderings (the live block's lines, the progress line's node summary).

Taking a snapshot only reads counters the stages keep anyway; rendering is
pure (a snapshot and a terminal size in, lines out).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import msgspec

from ._nodes import NodeStats
from ._sources import NodeSource

if TYPE_CHECKING:
    from ._stats import StatsCollector

__all__ = ["RateMeter", "Status", "node_summary", "render_status", "take_status"]

MAX_NODES = 8
"""Node rows shown at most; the others are counted on one line."""


class Status(msgspec.Struct, frozen=True):
    """A running crawl at one moment."""

    elapsed: float
    pages: int
    pages_per_s: float
    """The recent rate (see :class:`RateMeter`), not the lifetime average."""
    items: int
    queued: int
    in_flight: int
    errors: int
    nodes: list[NodeStats] = []
    """The busiest nodes of the mesh, most requests first (none without a mesh)."""
    node_count: int = 0
    """Nodes in the mesh, listed or not."""


class RateMeter:
    """Events per second over the last ``window`` seconds.

    Keeps one sample per :meth:`update`; called every ``interval`` seconds it
    holds about ``window / interval`` samples.
    """

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now: float, count: int) -> float:
        """Record ``count`` (a running total) at ``now``; returns the rate
        since the newest sample at least ``window`` old (or the oldest)."""
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] >= self._window:
            samples.popleft()
        then, before = samples[0]
        return (count - before) / (now - then) if now > then else 0.0


def take_status(
    stats: StatsCollector,
    backlog: tuple[int, int],
    balancer: NodeSource | None,
    *,
    elapsed: float,
    pages_per_s: float,
    top: int = MAX_NODES,
) -> Status:
    """Read a crawl's counters.

    Args:
        stats: the crawl's live counters.
        backlog: (requests queued, requests in flight).
        balancer: the node mesh, if the crawl has one.
        elapsed: seconds since the crawl started.
        pages_per_s: the recent rate.
        top: how many of the busiest nodes to read (only their latencies
            are sorted, so a big mesh costs little).
    """
    nodes: list[NodeStats] = []
    count = 0
    if balancer is not None:
        nodes = balancer.node_stats(top=top)
        count = balancer.node_count
        if count == 1 and nodes and nodes[0].kind == "direct":
            nodes, count = [], 0  # no mesh: the one direct node says nothing
    queued, in_flight = backlog
    return Status(
        elapsed=elapsed,
        pages=stats.pages,
        pages_per_s=pages_per_s,
        items=stats.items,
        queued=queued,
        in_flight=in_flight,
        errors=sum(stats.errors.values()),
        nodes=nodes,
        node_count=count,
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _state(node: NodeStats) -> str:
    return node.state if node.breaker == "closed" else f"{node.state}, breaker {node.breaker}"


def _fit(line: str, width: int) -> str:
    """``line`` cut to ``width - 1`` columns: the last one stays free, so the
    terminal never wraps a row of the block. (ASCII only: a stream that cannot
    encode a character escapes it, which would widen the row.)"""
    return line[: max(width - 1, 1)]


def render_status(
    status: Status, *, width: int = 80, height: int = 24, max_nodes: int = MAX_NODES
) -> list[str]:
    """The live block's lines, each cut to the terminal's ``width``.

    At most ``max_nodes`` node rows are listed (fewer on a short terminal),
    then one line counts the rest; the block leaves at least a row of the
    ``height`` free for the log lines scrolling above it.
    """
    lines = [
        f"{_clock(status.elapsed)}  pages {status.pages} ({status.pages_per_s:.1f} pages/s)  "
        f"items {status.items}  queued {status.queued}  in flight {status.in_flight}  "
        f"errors {status.errors}"
    ]
    room = max(height - 1, 1)
    if status.nodes and room >= 3:  # (the header, the node header, one node)
        rows = min(len(status.nodes), max_nodes, room - 2)
        hidden = status.node_count - rows
        if hidden and rows + 3 > room:
            rows -= 1  # keep a row for the count of the others
            hidden += 1
        if rows > 0:
            lines.append(
                f"  {'node':<16} {'share':>6} {'requests':>8} {'p50 ms':>8} {'in flight':>9} "
                f"{'errors':>6}  state"
            )
            # (62 columns before the state: "up, breaker open" fits in 80.)
            lines += [
                f"  {n.name[:16]:<16} {n.share:>6.1%} {n.requests:>8} {n.p50_ms:>8.1f} "
                f"{n.in_flight:>9} {sum(n.errors.values()):>6}  {_state(n)}"
                for n in status.nodes[:rows]
            ]
        if hidden > 0:
            lines.append(f"  ... {hidden} more node{'s' if hidden > 1 else ''}")
    return [_fit(line, width) for line in lines[:room]]


def node_summary(status: Status) -> str:
    """The nodes' shares in one short string for a progress line, e.g.
    ``eu-1 51%, us-1 33%, ap-1 16% down, +5 more`` ("" without a mesh)."""
    parts = []
    for node in status.nodes:
        state = "" if node.state == "up" and node.breaker == "closed" else f" {_state(node)}"
        parts.append(f"{node.name} {node.share:.0%}{state}")
    hidden = status.node_count - len(status.nodes)
    if hidden > 0:
        parts.append(f"+{hidden} more")
    return ", ".join(parts)
