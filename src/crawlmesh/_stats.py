"""Crawl statistics: counters kept while crawling, a frozen record at the end."""

from __future__ import annotations

from collections import Counter

import msgspec
import trio

__all__ = ["CrawlStats", "StatsCollector"]


class CrawlStats(msgspec.Struct, frozen=True):
    """What a crawl did, as printed at the end and returned by :func:`crawl`."""

    finish_reason: str
    """``finished``, ``max_pages``, ``max_items``, ``shutdown`` or ``error``."""
    elapsed: float
    pages: int
    """Responses received (any status)."""
    items: int
    requests_scheduled: int
    """Requests accepted into the frontier (after dedupe and filters)."""
    errors: int
    """Requests that finally failed, plus callback and item failures."""
    errors_by_kind: dict[str, int]
    filtered: dict[str, int]
    """Requests not fetched by policy: duplicate, offsite, robots, depth, ..."""
    status_counts: dict[str, int]
    bytes_received: int
    robots_fetched: int
    unfinished: int
    """Requests left unfetched when the crawl stopped early."""

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.elapsed if self.elapsed > 0 else 0.0

    def render(self) -> str:
        """A human-readable block for stderr."""
        lines = [
            f"crawl {self.finish_reason} in {self.elapsed:.2f} s: "
            f"{self.pages} pages ({self.pages_per_second:.1f} pages/s), {self.items} items, "
            f"{self.errors} errors",
            f"  requests scheduled {self.requests_scheduled}, "
            f"bytes received {self.bytes_received}, robots.txt fetched {self.robots_fetched}",
        ]
        if self.status_counts:
            lines.append("  status: " + _fmt(self.status_counts))
        if self.errors_by_kind:
            lines.append("  errors: " + _fmt(self.errors_by_kind))
        if self.filtered:
            lines.append("  filtered: " + _fmt(self.filtered))
        if self.unfinished:
            lines.append(f"  unfinished (left in the frontier): {self.unfinished}")
        return "\n".join(lines)


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


class StatsCollector:
    """Mutable counters, updated by the stages on the event loop."""

    def __init__(self, started: float = 0.0) -> None:
        self.started = started
        self.pages = 0
        self.items = 0
        self.scheduled = 0
        self.bytes = 0
        self.unfinished = 0
        self.errors: Counter[str] = Counter()
        self.filtered: Counter[str] = Counter()
        self.status: Counter[int] = Counter()

    def snapshot(self, finish_reason: str, robots_fetched: int = 0) -> CrawlStats:
        return CrawlStats(
            finish_reason=finish_reason,
            elapsed=trio.current_time() - self.started,
            pages=self.pages,
            items=self.items,
            requests_scheduled=self.scheduled,
            errors=sum(self.errors.values()),
            errors_by_kind=dict(self.errors),
            filtered=dict(self.filtered),
            status_counts={str(k): v for k, v in sorted(self.status.items())},
            bytes_received=self.bytes,
            robots_fetched=robots_fetched,
            unfinished=self.unfinished,
        )
