"""Progress lines on stderr while a crawl runs (plain log lines)."""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio

from ._stats import StatsCollector

__all__ = ["report_progress"]

log = structlog.get_logger("crawlmesh.engine")


async def report_progress(
    interval: float, stats: StatsCollector, queues: Callable[[], tuple[int, int]]
) -> None:
    """Log pages, rate, items, queued, in-flight and errors every ``interval``
    seconds until cancelled; nothing if ``interval`` is 0.

    Args:
        interval: seconds between lines.
        stats: the crawl's live counters.
        queues: returns (requests queued, requests in flight).
    """
    if not interval:
        return
    last_pages, last_time = 0, trio.current_time()
    while True:
        await trio.sleep(interval)
        now = trio.current_time()
        queued, in_flight = queues()
        log.info(
            "progress",
            pages=stats.pages,
            pages_per_s=round((stats.pages - last_pages) / (now - last_time), 1),
            items=stats.items,
            queued=queued,
            in_flight=in_flight,
            errors=sum(stats.errors.values()),
        )
        last_pages, last_time = stats.pages, now
