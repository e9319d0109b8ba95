"""SitemapSpider: a crawl driven by sitemaps (sitemaps.org) instead of links.

The spider fetches its ``sitemap_urls`` (robots.txt files are read for their
``Sitemap:`` lines), follows sitemap indexes, and schedules each page a
urlset lists, routed to a callback by ``sitemap_rules``. What a sitemap may
cost is bounded: the size limit of any response (gzip files included), the
protocol's 50,000 entries and 50 MB per file, and a depth limit on nested
indexes. Everything it drops is counted in :attr:`SitemapSpider.sitemap_counts`
and said in a warning naming the sitemap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import trio

from .._exceptions import DecodingFailed, ResponseTooLarge, UsageError
from .._request import Request
from .._response import Response
from .._spider import Spider
from ._sitemap_parse import (
    MAX_ENTRIES,
    MAX_FILE_BYTES,
    ParsedSitemap,
    SitemapEntry,
    parse_lastmod,
    parse_sitemap,
    sitemaps_in_robots,
    unpack,
)

__all__ = ["SitemapSpider"]

# The size limit when the spider runs without settings (the setting's default).
_DEFAULT_MAX_SIZE: Final = 10 * 1024 * 1024
# Bodies larger than this are unpacked and parsed in a worker thread (lxml
# and zlib release the GIL), so a big sitemap does not stall the crawl.
_THREAD_AT: Final = 256 * 1024

_Rule = tuple[str | re.Pattern[str], str | Callable[..., Any]]


class SitemapSpider(Spider):
    """A spider that finds its pages in sitemaps (see the README, "Sitemaps").

    Attributes:
        sitemap_urls: sitemap URLs to start from; a URL whose path ends in
            ``/robots.txt`` is read for its ``Sitemap:`` lines instead. (A
            string, as ``-a sitemap_urls=...`` gives, is split on
            whitespace.) ``start_urls`` are not read, as in Scrapy.
        sitemap_rules: ``(regex, callback)`` pairs: a page URL goes to the
            callback of the first regex found in it (``re.search``); the
            callback is a method name or a callable. A URL no rule matches
            is not fetched. By default every page goes to ``parse``.
        sitemap_follow: regexes an index's entry must match (any of them)
            to be fetched; by default every entry is.
        sitemap_alternate_links: also fetch each page's alternates
            (``xhtml:link rel="alternate"``, its other languages), routed
            by the same rules.
        lastmod_after: keep only pages whose ``<lastmod>`` is later (pages
            with no lastmod are kept); a naive datetime is taken as UTC,
            and a string (``-a lastmod_after=2024-01-31``) as a W3C datetime.
        sitemap_max_depth: how many indexes deep to follow; an index at
            this depth is not followed (a warning says so).
        sitemap_counts: what the sitemaps held and what was dropped, by
            reason (``sitemaps``, ``entries``, ``off_host``, ``not_sitemap``,
            ``broken_xml``, ``over_limit``, ``too_deep``, ``not_followed``,
            ``no_rule``, ``old``).
    """

    sitemap_urls: Sequence[str] = ()
    sitemap_rules: Sequence[_Rule] = (("", "parse"),)
    sitemap_follow: Sequence[str | re.Pattern[str]] = ("",)
    sitemap_alternate_links: bool = False
    lastmod_after: datetime | None = None
    sitemap_max_depth: int = 3

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(self.sitemap_urls, str):  # (-a sitemap_urls="URL URL...")
            self.sitemap_urls = self.sitemap_urls.split()
        self._rules = [
            (self._regex("sitemap_rules", rx), self._callback(cb)) for rx, cb in self.sitemap_rules
        ]
        self._follow = [self._regex("sitemap_follow", rx) for rx in self.sitemap_follow]
        self._after = _aware(self.lastmod_after)
        self.sitemap_counts: Counter[str] = Counter()

    def _regex(self, where: str, pattern: str | re.Pattern[str]) -> re.Pattern[str]:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"{type(self).__name__}.{where}: {pattern!r}: {exc}") from None

    def _callback(self, callback: str | Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(callback, str):
            method = getattr(self, callback, None)
            if not callable(method):
                raise UsageError(
                    f"{type(self).__name__}.sitemap_rules: no method named {callback!r}"
                )
            return method  # type: ignore[no-any-return]
        if not callable(callback):
            raise UsageError(
                f"{type(self).__name__}.sitemap_rules: a callback must be a method name "
                f"or a callable, not {type(callback).__name__}"
            )
        return callback

    async def start(self) -> AsyncIterator[Request]:
        """One request per :attr:`sitemap_urls` (fetched even if seen before)."""
        for url in self.sitemap_urls:
            root = _host(url)
            if urlsplit(url).path.endswith("/robots.txt"):
                yield Request(
                    url, callback=self._parse_robots, cb_kwargs={"root": root}, dont_filter=True
                )
            else:
                yield self._sitemap_request(url, 0, root, dont_filter=True)

    def sitemap_filter(self, entries: Iterable[SitemapEntry]) -> Iterable[SitemapEntry]:
        """The entries to keep, of one urlset or index (each entry's ``kind``
        tells which). Override it to filter on ``lastmod``, ``priority``...;
        by default all of them (after :attr:`lastmod_after`)."""
        return entries

    def _sitemap_request(
        self, url: str, nesting: int, root: str, *, dont_filter: bool = False
    ) -> Request:
        return Request(
            url,
            callback=self._parse_sitemap,
            cb_kwargs={"nesting": nesting, "root": root},
            dont_filter=dont_filter,
        )

    def _parse_robots(self, response: Response, root: str = "") -> Iterable[Request]:
        # A robots.txt vouches for the sitemaps it lists, wherever they are
        # (sitemaps.org's cross-submission): they are fetched like any
        # request (allowed_domains applies), and their pages may be on the
        # robots.txt's host as well as their own.
        for url in sitemaps_in_robots(response.body):
            yield self._sitemap_request(response.urljoin(url), 0, root or _host(response.url))

    async def _parse_sitemap(
        self, response: Response, nesting: int = 0, root: str = ""
    ) -> AsyncIterator[Request]:
        parsed = await self._read(response)
        url = response.url
        if not self._usable(parsed, url):
            return
        hosts = {_host(url), root}
        if parsed.kind == "sitemapindex":
            if nesting >= self.sitemap_max_depth:
                self._drop("too_deep", url, len(parsed.entries), depth=nesting)
                return
            for loc in self._locs(parsed.entries, response, hosts):
                if any(rx.search(loc) for rx in self._follow):
                    yield self._sitemap_request(loc, nesting + 1, root)
                else:
                    self.sitemap_counts["not_followed"] += 1
            return
        entries: Iterable[SitemapEntry] = parsed.entries
        if self._after is not None:
            entries = self._recent(parsed.entries)
        no_rule = 0
        for loc in self._locs(entries, response, hosts):
            callback = next((cb for rx, cb in self._rules if rx.search(loc)), None)
            if callback is None:
                no_rule += 1
                continue
            yield Request(loc, callback=callback)
        self.sitemap_counts["no_rule"] += no_rule

    async def _read(self, response: Response) -> ParsedSitemap:
        """The sitemap in ``response``'s body, gunzipped within the size
        limit; a gzip file over it fails the request as a page over it does
        (kind ``too_large``: nothing it lists is scheduled)."""
        limit = self.settings.max_response_size if self.settings else _DEFAULT_MAX_SIZE
        body = response.body
        try:
            if len(body) > _THREAD_AT or body.startswith(b"\x1f\x8b"):
                return await trio.to_thread.run_sync(_unpack_and_parse, body, limit)
            return _unpack_and_parse(body, limit)
        except ResponseTooLarge as exc:
            raise ResponseTooLarge(
                f"sitemap decompresses to more than max_response_size ({limit} bytes)",
                request=response.request,
            ) from exc
        except DecodingFailed as exc:
            raise DecodingFailed(f"sitemap: {exc}", request=response.request) from exc

    def _usable(self, parsed: ParsedSitemap, url: str) -> bool:
        """Count what the file held and warn of what was wrong with it;
        False if it is no sitemap at all."""
        counts = self.sitemap_counts
        if parsed.kind == "none":
            counts["not_sitemap"] += 1
            self.logger.warning("not a sitemap; nothing scheduled from it", sitemap=url)
            return False
        counts["sitemaps"] += 1
        counts["entries"] += len(parsed.entries)
        if parsed.broken:
            counts["broken_xml"] += 1
            self.logger.warning(
                "broken sitemap XML; keeping the entries read before the error",
                sitemap=url,
                error=parsed.broken,
                kept=len(parsed.entries),
            )
        if parsed.dropped:
            self._drop("over_limit", url, parsed.dropped, limit=f"{MAX_ENTRIES} entries")
        if parsed.cut:
            counts["over_limit"] += 1
            self.logger.warning(
                "sitemap over the protocol's size limit; read up to it",
                sitemap=url,
                limit=f"{MAX_FILE_BYTES} bytes",
            )
        return True

    def _recent(self, entries: Iterable[SitemapEntry]) -> Iterator[SitemapEntry]:
        after = self._after
        assert after is not None
        for entry in entries:
            if entry.lastmod is None or entry.lastmod > after:
                yield entry
            else:
                self.sitemap_counts["old"] += 1

    def _locs(
        self, entries: Iterable[SitemapEntry], response: Response, hosts: set[str]
    ) -> Iterator[str]:
        """The URLs to request for the entries ``sitemap_filter`` keeps: on
        the sitemap's hosts, or wherever ``allowed_domains`` (checked at
        admission, counted as ``offsite``) permits."""
        off_host = 0
        open_hosts = bool(self.allowed_domains)
        for entry in self.sitemap_filter(entries):
            urls = [entry.loc]
            if self.sitemap_alternate_links:
                urls += [alt for alt in entry.alternates if alt != entry.loc]
            for loc in urls:
                url = response.urljoin(loc)
                if not open_hosts and _host(url) not in hosts:
                    off_host += 1
                    continue
                yield url
        if off_host:
            self._drop("off_host", response.url, off_host)

    def _drop(self, reason: str, url: str, count: int, **keys: Any) -> None:
        self.sitemap_counts[reason] += count
        self.logger.warning(f"sitemap entries dropped: {reason}", sitemap=url, count=count, **keys)

    async def closed(self, reason: str) -> None:
        """Log what the sitemaps held and what was dropped (one line)."""
        if self.sitemap_counts:
            self.logger.info("sitemaps read", **dict(sorted(self.sitemap_counts.items())))


def _unpack_and_parse(body: bytes, limit: int) -> ParsedSitemap:
    return parse_sitemap(unpack(body, limit))


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        parsed = parse_lastmod(value)
        if parsed is None:
            raise UsageError(f"lastmod_after: {value!r} is not a W3C datetime (YYYY-MM-DD...)")
        return parsed
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
