"""The final stats as a human-readable block (for stderr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._stats import CrawlStats, DomainStats

__all__ = ["render"]

SHOWN_DOMAINS = 10
"""Domains listed one by one in the block (the stats file has more)."""


def render(stats: CrawlStats) -> str:
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
    from ._stats import DomainStats

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
