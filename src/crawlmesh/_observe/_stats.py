"""Crawl statistics: counters kept while crawling, a frozen record at the end
(:class:`~crawlmesh._observe._record.CrawlStats`).

Per-domain counters cost one dict lookup per response. The first
10,000 domains are counted one by one and later ones together (so a broad
crawl's counters stay bounded); the record keeps the 100 domains with the
most pages, and an ``(other)`` row for the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Literal

import msgspec
import trio

from ._nodes import SHARE_MIN_REQUESTS, NodeStats
from ._record import CrawlStats, Distribution, DomainStats, NodeShare
from ._sources import MeshSource

__all__ = ["StatsCollector"]

TOP_DOMAINS = 100
"""Domains listed one by one in the stats; the others share one row."""
_MAX_DOMAINS = 10_000  # counted one by one; later domains share one row
OTHER = "(other)"
"""The row of the domains not listed one by one."""
NO_DOMAIN = "(none)"
"""The row of what no domain can be named for: invalid URLs, start() and
output errors, and a resumed job's earlier runs."""
_STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
# Latency histogram buckets: a quarter of a power of two of milliseconds
# (a bucket is 19% wide), so a domain's p95 costs a few ints.
_BUCKETS_PER_DOUBLING = 4


class _Domain:
    """One domain's counters."""

    __slots__ = (
        "bytes",
        "classes",
        "errors",
        "hist",
        "items",
        "latency",
        "pages",
        "pauses",
        "retries",
    )

    def __init__(self) -> None:
        self.pages = self.items = self.bytes = self.retries = self.pauses = 0
        self.classes = [0] * len(_STATUS_CLASSES)
        self.errors: Counter[str] | None = None
        self.latency = 0.0
        self.hist: dict[int, int] = {}

    def add(self, other: _Domain) -> None:
        self.pages += other.pages
        self.items += other.items
        self.bytes += other.bytes
        self.retries += other.retries
        self.pauses += other.pauses
        self.classes = [a + b for a, b in zip(self.classes, other.classes, strict=True)]
        if other.errors:
            self.errors = (self.errors or Counter()) + other.errors
        self.latency += other.latency
        for bucket, n in other.hist.items():
            self.hist[bucket] = self.hist.get(bucket, 0) + n

    def row(self, name: str, domains: int, trips: int) -> DomainStats:
        return DomainStats(
            domain=name,
            domains=domains,
            pages=self.pages,
            items=self.items,
            bytes=self.bytes,
            status={c: n for c, n in zip(_STATUS_CLASSES, self.classes, strict=True) if n},
            errors=dict(sorted(self.errors.items())) if self.errors else {},
            retries=self.retries,
            retry_after_pauses=self.pauses,
            breaker_trips=trips,
            mean_ms=round(self.latency * 1000 / self.pages, 1) if self.pages else 0.0,
            p95_ms=_p95_ms(self.hist),
        )


def _bucket(seconds: float) -> int:
    ms = seconds * 1000.0
    return int(math.log2(ms) * _BUCKETS_PER_DOUBLING) + 1 if ms > 1.0 else 0


def _p95_ms(hist: dict[int, int]) -> float:
    """The upper edge of the bucket holding the 95th percentile."""
    total = sum(hist.values())
    if not total:
        return 0.0
    rank = math.ceil(0.95 * total)
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round(math.pow(2.0, bucket / _BUCKETS_PER_DOUBLING), 1)
    raise AssertionError("unreachable")


class StatsCollector:
    """Mutable counters, updated by the stages on the event loop."""

    def __init__(self, started: float = 0.0) -> None:
        self.started = started
        self.pages = 0
        self.pages_resumed = 0  # of pages, counted by earlier runs
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
        self.items_dropped: Counter[str] = Counter()
        self.hook_errors: Counter[str] = Counter()
        self.status: Counter[int] = Counter()
        self.node_retries: Counter[str] = Counter()
        self._domains: dict[str, _Domain] = {}
        self._overflow = _Domain()  # domains past the first _MAX_DOMAINS

    def _domain(self, domain: str) -> _Domain:
        d = self._domains.get(domain)
        if d is None:
            if len(self._domains) >= _MAX_DOMAINS:
                return self._overflow
            d = self._domains[domain] = _Domain()
        return d

    # -- what the stages report (each is one dict lookup) ----------------------

    def response(self, domain: str, status: int, size: int, elapsed: float) -> None:
        """A response came back (its attempt was the last)."""
        self.pages += 1
        self.status[status] += 1
        self.bytes += size
        d = self._domain(domain)
        d.pages += 1
        d.bytes += size
        d.classes[status // 100 if 100 <= status < 600 else 0] += 1
        d.latency += elapsed
        bucket = _bucket(elapsed)
        d.hist[bucket] = d.hist.get(bucket, 0) + 1

    def item(self, domain: str) -> None:
        """An item was written."""
        self.items += 1
        self._domain(domain).items += 1

    def failed(self, domain: str, kind: str) -> None:
        """A request finally failed ("" if it has no domain)."""
        self.errors[kind] += 1
        d = self._domain(domain)
        if d.errors is None:
            d.errors = Counter()
        d.errors[kind] += 1

    def retried(self, domain: str) -> None:
        """A request was parked for another attempt."""
        self._domain(domain).retries += 1

    def paused(self, domain: str) -> None:
        """A Retry-After paused the domain."""
        self.pauses += 1
        self._domain(domain).pauses += 1

    # -- the record -------------------------------------------------------------

    def domain_rows(self, trips: Counter[str] | None = None) -> list[DomainStats]:
        """The per-domain table: the top domains by pages, ``(other)``, and
        ``(none)`` (see the module notes), so that each total of the crawl
        is the sum of the rows. ``trips``: (node, domain) breaker openings
        by domain."""
        trips = trips or Counter()
        named = [(name, d) for name, d in self._domains.items() if name]
        named.sort(key=lambda pair: (-pair[1].pages, pair[0]))
        top, rest = named[:TOP_DOMAINS], named[TOP_DOMAINS:]
        rows = [d.row(name, 1, trips[name]) for name, d in top]
        other = _Domain()
        other.add(self._overflow)
        for _, d in rest:
            other.add(d)
        listed = {name for name, _ in top}
        other_trips = sum(n for name, n in trips.items() if name not in listed)
        if rest or other.pages or other.errors or other.items or other_trips:
            rows.append(other.row(OTHER, len(rest), other_trips))
        # What the totals hold beyond the rows: counts made without a
        # domain (start() and output errors) and a resumed job's earlier runs.
        none = _Domain()
        unnamed = self._domains.get("")
        if unnamed is not None:
            none.add(unnamed)
        none.pages = self.pages - sum(r.pages for r in rows)
        none.items = self.items - sum(r.items for r in rows)
        none.bytes = self.bytes - sum(r.bytes for r in rows)
        none.retries = self.retries - sum(r.retries for r in rows)
        none.pauses = self.pauses - sum(r.retry_after_pauses for r in rows)
        errors = Counter(self.errors)
        classes = _classes_of(self.status)
        for row in rows:
            errors.subtract(row.errors)
            classes.subtract(row.status)
        none.errors = +errors
        none.classes = [classes[c] for c in _STATUS_CLASSES]
        if none.pages or none.items or none.bytes or none.retries or none.pauses or none.errors:
            rows.append(none.row(NO_DOMAIN, 0, 0))
        return rows

    def snapshot(
        self, finish_reason: str, robots_fetched: int = 0, balancer: MeshSource | None = None
    ) -> CrawlStats:
        mesh: dict[str, Any] = {}
        trips: Counter[str] | None = None
        if balancer is not None:
            nodes = [
                msgspec.structs.replace(n, retries=self.node_retries[n.name])
                for n in balancer.node_stats()
            ]
            mesh = {
                "nodes": nodes,
                "distribution": _distribution(nodes, balancer.strategy_name),
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
                trips = circuits.domain_trips
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
            items_dropped=dict(self.items_dropped),
            hook_errors=dict(self.hook_errors),
            status_counts={str(k): v for k, v in sorted(self.status.items())},
            bytes_received=self.bytes,
            robots_fetched=robots_fetched,
            unfinished=self.unfinished,
            domains=self.domain_rows(trips),
            domains_seen=len([name for name in self._domains if name]),
            retry_after_pauses=self.pauses,
            retries=self.retries,
            retry_budget_refusals=self.retry_budget_refusals,
            circuit_holds=self.circuit_holds,
            throttle_decreases=self.throttle_decreases,
            pages_resumed=self.pages_resumed,
        )


def _classes_of(status: Counter[int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for code, n in status.items():
        out[_STATUS_CLASSES[code // 100 if 100 <= code < 600 else 0]] += n
    return out


def _distribution(nodes: list[NodeStats], strategy: str) -> Distribution:
    total = sum(n.requests for n in nodes)
    reason = ""
    if strategy == "round-robin":
        reason = "round-robin ignores weights"
    elif total <= SHARE_MIN_REQUESTS:
        reason = f"{total} requests: more than {SHARE_MIN_REQUESTS} are needed to judge"
    shares = []
    for n in nodes:
        verdict: Literal["ok", "uneven", "not judged", "fallback"]
        if n.state == "fallback":
            verdict = "fallback"
        elif reason:
            verdict = "not judged"
        else:
            verdict = "uneven" if n.uneven else "ok"
        shares.append(
            NodeShare(
                node=n.name,
                weight=n.weight,
                requests=n.requests,
                share=n.share,
                expected_share=n.expected_share,
                verdict=verdict,
            )
        )
    overall: Literal["ok", "uneven", "not judged"] = "not judged"
    if not reason:
        overall = "uneven" if any(s.verdict == "uneven" for s in shares) else "ok"
    return Distribution(
        verdict=overall, reason=reason, strategy=strategy, requests=total, nodes=shares
    )
