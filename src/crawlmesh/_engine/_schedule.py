"""Scheduling: a request into the frontier, through admission (filters and
dedupe) and the backend's store (which may queue it elsewhere: the crawl's
shared queue).

While the crawl is stopping, a request that passes the filters is not
queued but ends ``unfinished``: nothing new is scheduled, nothing is lost.
"""

from __future__ import annotations

import structlog

from .._frontier import Admission, Frontier
from .._frontier._admission import clean_allowed_domains
from .._hooks import Events, RequestDropped, RequestScheduled
from .._request import Request
from .._settings import Settings
from .._shaping import Politeness
from .._spider import Spider
from .._state import DedupeStore, NotPersistable, RequestStore
from .._util._url import split_http_url
from ._ledger import Ledger
from ._robots import RobotsCache

__all__ = ["Scheduler"]

log = structlog.get_logger("crawlmesh.engine")


class Scheduler:
    """Admits and queues requests (see the module).

    Args:
        settings: resolved settings.
        spider: the spider (its ``allowed_domains``).
        ledger: the crawl's shared accounting.
        frontier: where admitted requests are queued.
        politeness: holds a domain until its robots.txt is known.
        robots: what tells whether a domain's robots.txt is known.
        store: where admitted requests are stored (and, if it says so, queued).
        dedupe: the fingerprints seen (its dupe filter is admission's).
        events: the crawl's events (``RequestScheduled``, and the filters'
            ``RequestDropped``).
    """

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        ledger: Ledger,
        *,
        frontier: Frontier,
        politeness: Politeness,
        robots: RobotsCache,
        store: RequestStore,
        dedupe: DedupeStore,
        events: Events,
    ) -> None:
        self._settings = settings
        self._events = events
        self._ledger = ledger
        self._stats = ledger.stats
        self._frontier = frontier
        self._politeness = politeness
        self._robots = robots
        self._store = store
        self.allowed_domains, mistakes = clean_allowed_domains(spider.allowed_domains)
        """The spider's ``allowed_domains``, as hosts."""
        for mistake in mistakes:
            log.warning(mistake, spider=spider.name)
        self.admission = Admission(
            dedupe.dupefilter,
            allowed_domains=self.allowed_domains,
            depth_limit=settings.depth_limit,
            filtered=self._stats.filtered,
            on_invalid=lambda request, exc, parent: ledger.fail(
                request, exc.kind, str(exc), parent=parent
            ),
            on_seen=dedupe.seen,
        )

    def schedule(self, request: Request, parent: Request | None = None) -> bool:
        """Filter, dedupe and queue one request; True if it was queued."""
        if parent is not None:
            request.referer = parent.url  # (before admission: its refusals name it too)
        parts = self.admission.admit(request, parent)
        if parts is None:
            return False
        ledger = self._ledger
        host = parts.hostname or ""
        try:
            # (While stopping too: the backend keeps it for a later run.)
            local = self._store.queued(
                host, request, self.admission.last_fingerprint, seed=parent is None
            )
        except NotPersistable as exc:
            ledger.fail(request, "not_persistable", str(exc), parent=parent)
            return False
        if ledger.stop_reason is not None:
            # Nothing new is scheduled while stopping, but nothing is lost.
            ledger.unfinished(request, f"not scheduled: crawl stopping ({ledger.stop_reason})")
            return False
        if self._events.wants(RequestScheduled):
            self._events.emit(RequestScheduled(request))
        if not local:  # queued in the shared backend; a worker will claim it
            self._stats.scheduled += 1
            return True
        if self._settings.robots.obey and not self._robots.is_loaded(parts):
            # One request at a time until robots.txt (and its Crawl-delay) is known.
            self._politeness.hold(host)
        self._frontier.push(host, request)
        ledger.pending += 1
        self._stats.scheduled += 1
        ledger.changed.set()
        return True

    def listen(self) -> None:
        """Tell the events of requests the filters refuse, if anyone
        listens (called once the subscriptions are in)."""
        if self._events.wants(RequestDropped):
            events = self._events
            self.admission.on_filtered = lambda r, why: events.emit(RequestDropped(r, why))

    def feed(self, domain: str, request: Request) -> None:
        """Queue a request the backend hands over (already admitted)."""
        if self._settings.robots.obey and not self._robots.is_loaded(split_http_url(request.url)):
            self._politeness.hold(domain)  # until its robots.txt is known, as in schedule()
        self._frontier.push(domain, request)
        self._ledger.pending += 1
        self._ledger.changed.set()
