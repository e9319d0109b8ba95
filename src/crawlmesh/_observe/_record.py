"""The crawl's final statistics: the record, its JSON and its text block.

The record (:class:`CrawlStats`) is what ``--stats FILE`` writes as JSON,
with a ``schema_version`` and a JSON Schema (:func:`stats_schema`,
``crawlmesh stats-schema``); :meth:`CrawlStats.render` is the block printed
on stderr at the end. :class:`~crawlmesh._observe._stats.StatsCollector`
builds it from the counters kept while crawling.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .._util._redact import redact, redact_value
from ._nodes import SHARE_MIN_REQUESTS, SHARE_TOLERANCE, SHARE_TOLERANCE_RELATIVE, NodeStats

__all__ = [
    "SCHEMA_VERSION",
    "CrawlStats",
    "Distribution",
    "DomainStats",
    "NodeShare",
    "stats_schema",
]

SCHEMA_VERSION = 1
"""Raised when a field of the stats file changes meaning or goes away
(new fields do not raise it)."""
SHOWN_DOMAINS = 10
"""Domains listed one by one in the block (the stats file has more)."""


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
    items_dropped: dict[str, int] = {}
    """Items a pipeline (or a parse hook) dropped, by reason."""
    hook_errors: dict[str, int] = {}
    """Pipeline, hook and event-handler failures, by ``Class.method``."""

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
        return redact(_render(self))


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


# -- the text block ----------------------------------------------------------


def _render(stats: CrawlStats) -> str:
    """The block :meth:`CrawlStats.render` returns (before redaction)."""
    s = stats
    lines = [
        f"crawl {s.finish_reason} in {s.elapsed:.2f} s: "
        f"{s.pages} pages ({s.pages_per_second:.1f} pages/s), {s.items} items, "
        f"{s.errors} errors",
        f"  requests scheduled {s.requests_scheduled}, "
        f"bytes received {s.bytes_received}, robots.txt fetched {s.robots_fetched}",
    ]
    if s.pages_resumed:
        lines.append(
            f"  resumed: {s.pages_resumed} of the pages were fetched by earlier runs, "
            f"{s.pages - s.pages_resumed} by this one (the rate is this run's)"
        )
    if s.status_counts:
        lines.append("  status: " + _fmt(s.status_counts))
    if s.errors_by_kind:
        lines.append("  errors: " + _fmt(s.errors_by_kind))
    if s.filtered:
        lines.append("  filtered: " + _fmt(s.filtered))
    if s.items_dropped:
        lines.append("  items dropped: " + _fmt(s.items_dropped))
    if s.hook_errors:
        lines.append("  hook errors: " + _fmt(s.hook_errors))
    if s.unfinished:
        lines.append(f"  unfinished (left in the frontier): {s.unfinished}")
    if s.retries or s.retry_budget_refusals:
        lines.append(
            f"  retries {s.retries}, refused by the retry budget {s.retry_budget_refusals}"
        )
    if s.retry_after_pauses:
        lines.append(f"  domains paused by Retry-After: {s.retry_after_pauses}")
    if s.throttle_decreases:
        lines.append(f"  concurrency lowered by pushback (AIMD): {s.throttle_decreases}")
    if s.breaker_transitions or s.bans:
        lines.append(
            f"  circuit breakers: {_fmt(s.breaker_transitions) or 'no changes'}; "
            f"bans {s.bans}, domains held {s.circuit_holds}, "
            f"direct fallbacks {s.direct_fallbacks}"
        )
    if s.domains:
        lines += _domain_lines(s)
    if len(s.nodes) > 1 or any(n.kind != "direct" for n in s.nodes):
        lines += _node_lines(s)
    if s.crawl_totals:
        lines += _render_totals(s.crawl_totals)
    return "\n".join(lines)


def _domain_lines(s: CrawlStats) -> list[str]:
    named = [d for d in s.domains if not d.domain.startswith("(")]
    shown = named[:SHOWN_DOMAINS]
    rest = named[SHOWN_DOMAINS:] + [d for d in s.domains if d.domain.startswith("(")]
    head = f"  domains ({s.domains_seen}"
    head += f"; the {len(shown)} with most pages):" if len(named) > len(shown) else "):"
    lines = [
        head,
        f"    {'domain':<26} {'pages':>6} {'items':>7} {'errors':>7} {'retries':>7} "
        f"{'pauses':>6} {'trips':>5} {'mean ms':>7} {'p95 ms':>7}  status",
    ]
    for d in shown:
        lines.append(_domain_line(d.domain, d))
    if rest:
        lines.append(_domain_line(_rest_name(rest), _sum_rows(rest)))
    return lines


def _rest_name(rest: list[DomainStats]) -> str:
    count = sum(d.domains for d in rest)
    return f"({count} others)" if count else rest[0].domain


def _sum_rows(rows: list[DomainStats]) -> DomainStats:
    status: dict[str, int] = {}
    errors: dict[str, int] = {}
    for row in rows:
        for key, n in row.status.items():
            status[key] = status.get(key, 0) + n
        for key, n in row.errors.items():
            errors[key] = errors.get(key, 0) + n
    pages = sum(r.pages for r in rows)
    return DomainStats(
        domain="",
        pages=pages,
        items=sum(r.items for r in rows),
        status=status,
        errors=errors,
        retries=sum(r.retries for r in rows),
        retry_after_pauses=sum(r.retry_after_pauses for r in rows),
        breaker_trips=sum(r.breaker_trips for r in rows),
        mean_ms=sum(r.mean_ms * r.pages for r in rows) / pages if pages else 0.0,
        p95_ms=max(r.p95_ms for r in rows),
    )


def _domain_line(name: str, d: DomainStats) -> str:
    return (
        f"    {name[:26]:<26} {d.pages:>6} {d.items:>7} {sum(d.errors.values()):>7} "
        f"{d.retries:>7} {d.retry_after_pauses:>6} {d.breaker_trips:>5} "
        f"{d.mean_ms:>7.1f} {d.p95_ms:>7.1f}  {_fmt(d.status)}"
    )


def _node_lines(s: CrawlStats) -> list[str]:
    lines = [
        f"  nodes ({s.strategy}; sessions moved {s.sessions_moved}, "
        f"region fallbacks {s.region_fallbacks}):",
        f"    {'name':<16} {'region':<12} {'weight':>7}  {'state':<10} {'requests':>8}  "
        f"{'share':>5}  {'expected':>8}  {'p50 ms':>6}  {'p95 ms':>6}  {'errors':>6} "
        f"{'retries':>7} {'trips':>5}",
    ]
    for n in s.nodes:
        flag = "  <- uneven" if n.uneven else ""
        lines.append(
            f"    {n.name[:16]:<16} {n.region[:12]:<12} {n.weight:>7g}  {n.state:<10} "
            f"{n.requests:>8}  {n.share:>5.1%}  {n.expected_share:>8.1%}  "
            f"{n.p50_ms:>6.1f}  {n.p95_ms:>6.1f}  {sum(n.errors.values()):>6} {n.retries:>7} "
            f"{n.breaker_trips + n.pair_breaker_trips:>5}{flag}"
            + (f"  breaker {n.breaker}" if n.breaker != "closed" else "")
        )
    d = s.distribution
    tolerance = (
        f"tolerance {d.tolerance * 100:g} points and {d.tolerance_relative:.0%} of the "
        "expected share"
    )
    lines.append(
        f"  distribution: {d.verdict} ({d.reason or tolerance})"
        if d.verdict == "not judged"
        else f"  distribution: {d.verdict} ({tolerance}, over {d.requests} requests)"
    )
    if s.sessions_split:
        lines.append(f"  sessions routed to two nodes outside a failover: {s.sessions_split}")
    return lines


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
