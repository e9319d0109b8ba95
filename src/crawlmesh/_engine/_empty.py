"""Why a crawl fetched nothing: the likely mistake, in one line.

A crawl that fetched no page usually has a mistake behind it (no start
URLs, an ``allowed_domains`` that refuses every start URL, robots.txt
disallowing the site, a site that cannot be reached); the engine logs it as
one warning, and ``crawlmesh crawl`` exits with its own status unless
``--allow-empty``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._observe import CrawlStats

__all__ = ["why_empty"]

_FILTER_HINTS = {
    "offsite": "allowed_domains = {domains} refuses them",
    "robots": "robots.txt disallows them (robots.obey = false to ignore it)",
    "duplicate": "they were seen before (a resumed job, or dont_filter)",
    "depth": "depth_limit refuses them",
    "unsupported_scheme": "they are not http(s) URLs",
    "dropped_by_hook": "a hook dropped them",
}


def why_empty(stats: CrawlStats, allowed_domains: Sequence[str]) -> str | None:
    """One line saying why nothing was fetched, or None if pages were."""
    if stats.pages or stats.finish_reason not in ("finished", "max_items"):
        return None
    if not stats.requests_scheduled and not stats.filtered and not stats.errors:
        return (
            "nothing was fetched: the spider made no start request "
            "(start_urls empty, or start() yields nothing)"
        )
    parts = []
    for reason, count in sorted(stats.filtered.items(), key=lambda kv: -kv[1]):
        hint = _FILTER_HINTS.get(reason, "")
        hint = hint.format(domains=list(allowed_domains)) if hint else ""
        parts.append(f"{count} filtered as {reason}" + (f" ({hint})" if hint else ""))
    if stats.errors:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.errors_by_kind.items()))
        parts.append(f"{stats.errors} failed ({kinds})")
    return "nothing was fetched: " + "; ".join(parts or ["no request was fetched"])
