"""Crawl statistics: counters kept while crawling, a frozen record at the end."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from ._balancer._balancer import NodeStats

if TYPE_CHECKING:
    from ._balancer._balancer import Balancer

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
    nodes: list[NodeStats] = []
    """Per-node figures (one direct node when no mesh is configured)."""
    strategy: str = ""
    sessions_moved: int = 0
    """Sessions reassigned to another node because theirs failed."""
    sessions_split: int = 0
    """Sessions that changed node although theirs was still up (should be 0)."""
    region_fallbacks: int = 0
    """Requests sent outside their region because it had no eligible node."""
    retry_after_pauses: int = 0
    """Times a 429/503 Retry-After paused a domain."""
    retries: int = 0
    """Attempts beyond the first (after a retryable status or error)."""
    retry_budget_refusals: int = 0
    """Retries refused because the retry budget was spent."""
    breaker_transitions: dict[str, int] = {}
    """Circuit breaker changes by scope and new state, e.g. "pair:open"."""
    bans: int = 0
    """Responses that looked like a ban (block pages, 403s)."""
    direct_fallbacks: int = 0
    """Requests fetched directly because no node could serve their domain."""
    crawl_totals: dict[str, int] = {}
    """With a shared backend: the counters of every worker that has ended,
    this one included, merged (``pages``, ``items``, ``errors.KIND``,
    ``status.CODE``, ``filtered.WHY``, ``workers``, ``workers_running``)."""
    circuit_holds: int = 0
    """Times a domain's requests were held because no node could serve it."""
    throttle_decreases: int = 0
    """Times a domain's AIMD concurrency limit was lowered by pushback."""

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
        if self.retries or self.retry_budget_refusals:
            lines.append(
                f"  retries {self.retries}, refused by the retry budget "
                f"{self.retry_budget_refusals}"
            )
        if self.retry_after_pauses:
            lines.append(f"  domains paused by Retry-After: {self.retry_after_pauses}")
        if self.throttle_decreases:
            lines.append(f"  concurrency lowered by pushback (AIMD): {self.throttle_decreases}")
        if self.breaker_transitions or self.bans:
            lines.append(
                f"  circuit breakers: {_fmt(self.breaker_transitions) or 'no changes'}; "
                f"bans {self.bans}, domains held {self.circuit_holds}, "
                f"direct fallbacks {self.direct_fallbacks}"
            )
        if len(self.nodes) > 1 or any(n.kind != "direct" for n in self.nodes):
            lines.append(
                f"  nodes ({self.strategy}; sessions moved {self.sessions_moved}, "
                f"region fallbacks {self.region_fallbacks}):"
            )
            lines.append(
                "    name             region        weight  state       requests  share  "
                "expected  p50 ms  p95 ms  errors"
            )
            for n in self.nodes:
                flag = "  <- uneven" if n.uneven else ""
                lines.append(
                    f"    {n.name[:16]:<16} {n.region[:12]:<12} {n.weight:>7g}  {n.state:<10} "
                    f"{n.requests:>8}  {n.share:>5.1%}  {n.expected_share:>8.1%}  "
                    f"{n.p50_ms:>6.1f}  {n.p95_ms:>6.1f}  {sum(n.errors.values())}{flag}"
                    + (f"  breaker {n.breaker}" if n.breaker != "closed" else "")
                )
            if self.sessions_split:
                lines.append(
                    f"  sessions routed to two nodes outside a failover: {self.sessions_split}"
                )
        if self.crawl_totals:
            lines += _render_totals(self.crawl_totals)
        return "\n".join(lines)


def _render_totals(totals: dict[str, int]) -> list[str]:
    """The crawl-wide lines of a worker's report (a shared backend)."""
    groups: dict[str, dict[str, int]] = {"status": {}, "errors": {}, "filtered": {}}
    for key, value in totals.items():
        group, dot, name = key.partition(".")
        if dot and group in groups:
            groups[group][name] = value
    running = totals.get("workers_running", 0)
    ended = totals.get("workers", 0)
    state = f"{running} still running" if running else "the crawl is over"
    lines = [
        f"  all workers ({ended} ended, {state}): {totals.get('pages', 0)} pages, "
        f"{totals.get('items', 0)} items, {sum(groups['errors'].values())} errors"
    ]
    lines += [f"    {name}: {_fmt(counts)}" for name, counts in groups.items() if counts]
    return lines


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
        self.pauses = 0
        self.retries = 0
        self.retry_budget_refusals = 0
        self.circuit_holds = 0
        self.throttle_decreases = 0
        self.errors: Counter[str] = Counter()
        self.filtered: Counter[str] = Counter()
        self.status: Counter[int] = Counter()

    def snapshot(
        self, finish_reason: str, robots_fetched: int = 0, balancer: Balancer | None = None
    ) -> CrawlStats:
        mesh: dict[str, Any] = {}
        if balancer is not None:
            mesh = {
                "nodes": balancer.node_stats(),
                "strategy": balancer.strategy_name,
                "sessions_moved": balancer.sessions_moved,
                "sessions_split": len(balancer.sessions_split),
                "region_fallbacks": balancer.region_fallbacks,
                "direct_fallbacks": balancer.direct_fallbacks,
            }
            circuits = balancer.circuits
            if circuits is not None:
                mesh["breaker_transitions"] = dict(sorted(circuits.transitions.items()))
                mesh["bans"] = sum(circuits.banned.values())
        return CrawlStats(
            **mesh,
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
            retry_after_pauses=self.pauses,
            retries=self.retries,
            retry_budget_refusals=self.retry_budget_refusals,
            circuit_holds=self.circuit_holds,
            throttle_decreases=self.throttle_decreases,
        )
