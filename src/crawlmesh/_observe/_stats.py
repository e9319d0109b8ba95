"""Crawl statistics: counters kept while crawling, a frozen record at the end.

The record (:class:`CrawlStats`) is what ``--stats FILE`` writes as JSON,
with a ``schema_version`` and a JSON Schema (:func:`stats_schema`,
``crawlmesh stats-schema``); :meth:`CrawlStats.render` is the block printed
on stderr at the end.

Per-domain counters cost one dict lookup per response. The first
10,000 domains are counted one by one and later ones together (so a broad
crawl's counters stay bounded); the record keeps the 100 domains with the
most pages, and an ``(other)`` row for the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import trio

from .._balancer._balancer import (
    SHARE_MIN_REQUESTS,
    SHARE_TOLERANCE,
    SHARE_TOLERANCE_RELATIVE,
    NodeStats,
)
from .._util._redact import redact, redact_value
from ._render import render

if TYPE_CHECKING:
    from .._balancer._balancer import Balancer

__all__ = [
    "SCHEMA_VERSION",
    "CrawlStats",
    "Distribution",
    "DomainStats",
    "NodeShare",
    "StatsCollector",
    "stats_schema",
]

SCHEMA_VERSION = 1
"""Raised when a field of the stats file changes meaning or goes away
(new fields do not raise it)."""
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


class DomainStats(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the per-domain table."""

    domain: str
    """The host, or ``(other)`` / ``(none)`` (see the module notes)."""
    domains: int = 1
    """Domains the row counts (more than 1 for ``(other)``; domains past the
    first 10,000 are in it but not in this number)."""
    pages: int = 0
    """Responses received (any status)."""
    items: int = 0
    bytes: int = 0
    """Response body bytes."""
    status: dict[str, int] = {}
    """Responses by status class: ``2xx``, ``3xx``, ``4xx``, ``5xx``."""
    errors: dict[str, int] = {}
    """Requests that finally failed, by kind."""
    retries: int = 0
    retry_after_pauses: int = 0
    breaker_trips: int = 0
    """Times one of its (node, domain) circuit breakers opened."""
    mean_ms: float = 0.0
    """Mean response time (as the transport measured it)."""
    p95_ms: float = 0.0
    """95th percentile response time, rounded up to its histogram bucket
    (within 19%)."""


class NodeShare(msgspec.Struct, frozen=True, kw_only=True):
    """One node's share of the requests against its weight's share."""

    node: str
    weight: float
    requests: int
    share: float
    expected_share: float
    """The weight's share of the mesh's total weight (0 for the direct fallback)."""
    verdict: Literal["ok", "uneven", "not judged", "fallback"]


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """Did the mesh spread requests as its weights say?

    A node is ``uneven`` when its share strays from its weight's share by
    more than ``tolerance`` (points) and ``tolerance_relative`` of that
    share; shares are judged once the mesh has served more than
    ``min_requests``, and not for round-robin (which ignores weights).
    """

    verdict: Literal["ok", "uneven", "not judged"] = "not judged"
    reason: str = "no requests"
    """Why it was not judged ("" when it was)."""
    strategy: str = ""
    requests: int = 0
    tolerance: float = SHARE_TOLERANCE
    tolerance_relative: float = SHARE_TOLERANCE_RELATIVE
    min_requests: int = SHARE_MIN_REQUESTS
    nodes: list[NodeShare] = []


class CrawlStats(msgspec.Struct, frozen=True, kw_only=True):
    """What a crawl did, as printed at the end and returned by :func:`crawl`."""

    schema_version: int = SCHEMA_VERSION
    """The stats file's schema version (see :func:`stats_schema`)."""
    finish_reason: str
    """``finished``, ``max_pages``, ``max_items``, ``shutdown``, ``output_error``,
    or with a Redis backend ``backend_error``, ``fenced`` or ``crawl_lost``."""
    elapsed: float
    """Seconds this run took (a resumed job's earlier runs not included)."""
    pages: int
    """Responses received (any status); with a resumed job, by every run."""
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
    domains: list[DomainStats] = []
    """Per domain, the domains with the most pages first, then ``(other)``
    and ``(none)`` if they count anything: each total of the crawl is the
    sum of its rows (see the module notes)."""
    domains_seen: int = 0
    """Domains counted one by one (at most 10,000)."""
    nodes: list[NodeStats] = []
    """Per-node figures (one direct node when no mesh is configured)."""
    distribution: Distribution = Distribution()
    """Each node's share of the requests against its weight's."""
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
    pages_resumed: int = 0
    """Of ``pages``, those counted by a resumed job's earlier runs."""

    @property
    def pages_per_second(self) -> float:
        """This run's pages over this run's time (a resumed job's earlier
        pages took earlier runs' time)."""
        pages = self.pages - self.pages_resumed
        return pages / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> bytes:
        """The stats as indented JSON (what ``--stats FILE`` holds), with
        every string redacted (see :mod:`crawlmesh._util._redact`)."""
        data = redact_value(msgspec.to_builtins(self))
        return msgspec.json.format(msgspec.json.encode(data)) + b"\n"

    def render(self) -> str:
        """A human-readable block for stderr (redacted)."""
        return redact(render(self))


def stats_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the ``--stats`` file.

    Generated from :class:`CrawlStats` (``msgspec.json.schema``), with every
    field required, since the file always holds them all, and
    ``schema_version`` fixed; ``crawlmesh stats-schema`` prints it.
    """
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"crawlmesh stats file, schema version {SCHEMA_VERSION}",
    }
    schema.update(msgspec.json.schema(CrawlStats))
    for definition in schema["$defs"].values():
        if definition.get("type") == "object" and "properties" in definition:
            definition["required"] = list(definition["properties"])
    schema["$defs"]["CrawlStats"]["properties"]["schema_version"]["const"] = SCHEMA_VERSION
    return schema


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
        self, finish_reason: str, robots_fetched: int = 0, balancer: Balancer | None = None
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
