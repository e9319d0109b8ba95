"""Admission: which requests yielded by spiders enter the frontier.

In order: depth limit, a well-formed http(s) URL (put in WHATWG's form,
without its fragment), allowed domains, then the
duplicate filter (fingerprint of method + canonical URL + body). Requests
filtered by policy are counted; malformed URLs are failures, reported
through ``on_invalid``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult, urlsplit

from .._exceptions import InvalidURL
from .._request import Request
from .._util._url import (
    NAVIGATION_ONLY_SCHEMES,
    canonical_from_parts,
    fingerprint,
    normalize,
    split_http_url,
)
from ._queue import DupeFilter

__all__ = ["Admission", "clean_allowed_domains"]

# Exact URLs of recent GETs whose fingerprint is already recorded: a bounded
# shortcut in front of the dupe filter, cleared when full. Most links on a
# page were seen before, and this skips parsing them again.
_RECENT_URLS = 1 << 16


def clean_allowed_domains(entries: Sequence[str]) -> tuple[list[str], list[str]]:
    """``allowed_domains`` as hosts, and a warning for each entry that was
    not one: a URL (``https://shop.example/``) or a port (``shop.example:8080``)
    gives its host, as the user meant (Scrapy ignores such entries, and
    every request is then offsite)."""
    hosts, warnings = [], []
    for entry in entries:
        host = entry.strip().lower().lstrip(".")
        if "://" in host:
            host = urlsplit(host).hostname or ""
        elif "/" in host:
            host = host.partition("/")[0]
        if ":" in host and not host.startswith("["):
            host = host.partition(":")[0]
        if host != entry.lower().lstrip("."):
            warnings.append(
                f"allowed_domains: {entry!r} is not a domain; using {host!r} "
                "(a domain matches itself and its subdomains, on any port)"
            )
        if host:
            hosts.append(host)
    return hosts, warnings


class Admission:
    """Filters and dedupes requests before they are queued.

    Args:
        dupefilter: the fingerprint set.
        allowed_domains: if not empty, only these hosts and their subdomains.
        depth_limit: deepest link depth admitted (0: no limit).
        filtered: counters of filtered requests, by reason.
        on_invalid: called with ``(request, error, parent)`` for a malformed URL.
        on_seen: called with the fingerprint of a URL a redirect reached,
            newly recorded (a shared backend records it crawl-wide).
    """

    def __init__(
        self,
        dupefilter: DupeFilter,
        *,
        allowed_domains: Sequence[str] = (),
        depth_limit: int = 0,
        filtered: Counter[str],
        on_invalid: Callable[[Request, InvalidURL, Request | None], None],
        on_seen: Callable[[bytes], None] = lambda fp: None,
    ) -> None:
        self._dupes = dupefilter
        self._allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
        self._offsite_cache: dict[str, bool] = {}
        self._depth_limit = depth_limit
        self._filtered = filtered
        self._on_invalid = on_invalid
        self._on_seen = on_seen
        self._recent: set[str] = set()
        # The fingerprint of the request admit() last accepted.
        self.last_fingerprint = b""
        self.on_filtered: Callable[[Request, str], None] | None = None
        """Told of each request a filter refuses (set when someone listens)."""

    def admit(self, request: Request, parent: Request | None) -> SplitResult | None:
        """The split URL if ``request`` may be queued, else None.

        Sets ``request.depth`` from ``parent``. A request with ``dont_filter``
        skips the duplicate check but still records its fingerprint.
        """
        filtered = self._filtered
        if not isinstance(request, Request):
            raise TypeError(f"expected a Request, got {type(request).__name__}")
        if parent is not None:
            request.depth = parent.depth + 1
            if self._depth_limit and request.depth > self._depth_limit:
                filtered["depth"] += 1
                if self.on_filtered is not None:
                    self.on_filtered(request, "depth")
                return None
        url = request.url
        cheap = not request.body and not request.dont_filter and request.method == "GET"
        if cheap and url in self._recent:
            filtered["duplicate"] += 1
            if self.on_filtered is not None:
                self.on_filtered(request, "duplicate")
            return None
        try:
            # The URL as a browser would send it (WHATWG), without its
            # fragment: what is fetched, and what the response reports.
            normal = normalize(url)
            parts = split_http_url(normal)
        except InvalidURL as exc:
            scheme = url.partition(":")[0].strip().lower()
            if scheme in NAVIGATION_ONLY_SCHEMES:
                filtered["unsupported_scheme"] += 1
                if self.on_filtered is not None:
                    self.on_filtered(request, "unsupported_scheme")
            else:
                self._on_invalid(request, exc, parent)
            return None
        if normal != url:
            request.url = normal
        if self._allowed and not self._is_allowed(parts.hostname or ""):
            filtered["offsite"] += 1
            if self.on_filtered is not None:
                self.on_filtered(request, "offsite")
            return None
        fp = self.last_fingerprint = fingerprint(
            request.method, canonical_from_parts(parts), request.body
        )
        new = self._dupes.add(fp)
        if cheap:
            if len(self._recent) >= _RECENT_URLS:
                self._recent.clear()
            self._recent.add(url)
        if not new and not request.dont_filter:
            filtered["duplicate"] += 1
            if self.on_filtered is not None:
                self.on_filtered(request, "duplicate")
            return None
        return parts

    def redirected(self, request: Request, url: str, hops: Sequence[str]) -> tuple[bool, bytes]:
        """Record the URLs a redirect chain reached as seen, so that links
        to them are duplicates. Returns ``(duplicate, ask)``: duplicate if
        its final URL ``url`` was seen before (the page is a duplicate then,
        unless ``dont_filter``); else ``ask`` is that URL's fingerprint when
        it is new here but the crawl may have seen it elsewhere (b"" when
        there is nothing to ask). The caller records ``ask`` with the crawl
        (``on_seen`` is not called for it) and calls :meth:`duplicate` if
        the crawl had seen it.

        ``hops`` are the URLs that redirected, the request's own first. Only
        GET and HEAD chains are recorded: a POST's final method depends on
        the statuses on the way.
        """
        if request.method not in ("GET", "HEAD") or request.body:
            return False, b""
        targets = (*hops[1:], url)
        new = True
        fp = b""
        for i, target in enumerate(targets):
            try:
                parts = split_http_url(target)
            except InvalidURL:
                continue
            fp = fingerprint(request.method, canonical_from_parts(parts))
            new = self._dupes.add(fp)
            if new and (i < len(targets) - 1 or request.dont_filter):
                self._on_seen(fp)
        if request.dont_filter:
            return False, b""
        if new:
            return False, fp
        self.duplicate(request)
        return True, b""

    def duplicate(self, request: Request) -> None:
        """Count a request found to be a duplicate after admission."""
        self._filtered["duplicate"] += 1
        if self.on_filtered is not None:
            self.on_filtered(request, "duplicate")

    def _is_allowed(self, host: str) -> bool:
        ok = self._offsite_cache.get(host)
        if ok is None:
            ok = any(host == d or host.endswith("." + d) for d in self._allowed)
            self._offsite_cache[host] = ok
        return ok
