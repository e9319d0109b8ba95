"""The ledger the stages share: what is pending, why the crawl stops, and
how each request ended.

A request is *pending* from the moment the frontier accepts it until its
callback (or errback) has finished. Every request ends exactly one way: a
response handed to its callback, a policy filter counted in stats, or a line
in the errors file (:meth:`Ledger.fail`, :meth:`Ledger.unfinished`); with a
backend that keeps them, a request that ended is journaled as finished
(:meth:`Ledger.finished`).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio

from .._exceptions import FetchError
from .._frontier import Frontier
from .._hooks import Events, RequestDropped, RequestFailed
from .._observe import StatsCollector
from .._request import Request
from .._resilience._retrying import Retrier
from .._state import Journal, RequestStore
from .._util._log import request_keys
from ._export import ErrorRecord, FeedSet, JsonLinesWriter
from ._records import Outcome

__all__ = ["Ledger"]

log = structlog.get_logger("crawlmesh.engine")


class Ledger:
    """Shared accounting of one crawl.

    Args:
        stats: the crawl's counters.
        items: the feeds (their lengths are committed with each finished request).
        errors: where failed requests go (None: only counted and logged).
        frontier: queued requests (drained as unfinished at the end).
        retrier: requests parked for a retry (likewise).
        on_stop: called once, with the reason, when the crawl starts stopping.
        store: where the crawl's requests are stored (told which ended).
        journal: what commits each ended request with the items file's length.
        events: the crawl's events (``RequestFailed``, ``RequestDropped``).
    """

    __slots__ = (
        "_errors",
        "_events",
        "_frontier",
        "_items",
        "_journal",
        "_journals",
        "_keeps_unfinished",
        "_on_stop",
        "_retrier",
        "_store",
        "active",
        "changed",
        "dispatched",
        "pending",
        "stats",
        "stop_reason",
    )

    def __init__(
        self,
        stats: StatsCollector,
        items: FeedSet,
        errors: JsonLinesWriter | None,
        frontier: Frontier,
        retrier: Retrier,
        on_stop: Callable[[str], None],
        *,
        store: RequestStore,
        journal: Journal,
        events: Events,
    ) -> None:
        self.stats = stats
        self._events = events
        self._items = items
        self._errors = errors
        self._store = store
        self._journal = journal
        self._journals = journal.journals
        self._keeps_unfinished = store.keeps_unfinished
        self._frontier = frontier
        self._retrier = retrier
        self._on_stop = on_stop
        self.pending = 0
        """Requests accepted by the frontier and not ended yet."""
        self.dispatched = 0
        """Fetches started (what ``max_pages`` counts)."""
        self.changed = trio.Event()
        """Set when something the dispatcher waits for changed (the
        dispatcher replaces it with a fresh one before each wait)."""
        self.stop_reason: str | None = None
        # Requests taken from the frontier and not yet ended (being fetched,
        # parked for a retry, waiting for or in their callback), by id: what
        # an immediate exit must still account for.
        self.active: dict[int, Request] = {}

    def notify(self) -> None:
        """Wake the dispatcher."""
        self.changed.set()

    def done_one(self) -> None:
        """A pending request ended."""
        self.pending -= 1
        if self.pending == 0:
            self.changed.set()

    def request_stop(self, reason: str) -> None:
        """Note why the crawl stops (the first reason wins) and tell the engine."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self._on_stop(reason)

    # -- how a request ends ------------------------------------------------

    def fail(
        self,
        request: Request,
        kind: str,
        reason: str,
        status: int | None = None,
        *,
        parent: Request | None = None,
        outcome: Outcome | None = None,
        domain: str | None = None,
        attempt: int | None = 0,
        error: FetchError | None = None,
    ) -> None:
        """Count and log a request that finally failed, and write it to the
        errors file. ``outcome``: its last attempt's, if one was made; else
        its ``domain`` and attempts made (None: unknown), if known;
        ``error``: the fetch error, when a fetch failed."""
        if outcome is not None:
            keys = outcome.log_keys()
        else:
            keys = request_keys(request.url, domain, None, attempt)
        self.stats.failed(keys["domain"], kind)
        log.warning("request failed", **keys, kind=kind, reason=reason)
        self._record(request, kind, reason, status, parent)
        if self._events.wants(RequestFailed):
            self._events.emit(RequestFailed(request, kind, reason, error))

    def filtered(self, request: Request, reason: str) -> None:
        """Count a request that ends as a policy filter (``reason``: the stats key)."""
        self.stats.filtered[reason] += 1
        if self._events.wants(RequestDropped):
            self._events.emit(RequestDropped(request, reason))

    def unfinished(self, request: Request, reason: str) -> None:
        """Count a request the crawl ended before it could."""
        self.stats.unfinished += 1
        # (Else the backend keeps it for a later run, unless it lost the crawl.)
        if not self._keeps_unfinished or self.stop_reason == "crawl_lost":
            self._record(request, "unfinished", reason, None, None)

    def finished(self, request: Request) -> None:
        """``request`` ended: tell the store, and (if it journals) commit
        with the items file's length."""
        self._store.finished(request)
        if self._journals:
            self._journal.commit(self._items.lengths(), self.stats)

    def _record(
        self,
        request: Request,
        kind: str,
        reason: str,
        status: int | None,
        parent: Request | None,
    ) -> None:
        # Every line names the page that linked here (None for a start
        # request), whichever stage the request ended in.
        referer = parent.url if parent is not None else request.referer
        if self._errors is not None:
            self._errors.write_error(
                ErrorRecord(
                    url=request.url,
                    kind=kind,
                    reason=reason,
                    method=request.method,
                    depth=request.depth,
                    status=status,
                    referer=referer,
                )
            )

    # -- the end of the crawl ----------------------------------------------

    def account_unfinished(self, reason: str) -> None:
        """The crawl is over: end what is still queued or parked for a retry."""
        for _, request in self._frontier.drain():
            self.active.pop(id(request), None)
            self.unfinished(request, f"not fetched: crawl ended ({reason})")
        for request in self._retrier.drain():
            self.active.pop(id(request), None)
            self.unfinished(request, f"retry not fetched: crawl ended ({reason})")

    def abandon(self, reason: str) -> int:
        """End, synchronously, every request not ended yet (queued, parked
        for a retry, being fetched or in a callback) as unfinished; returns
        how many there were."""
        before = self.stats.unfinished
        ended: set[int] = set()
        queued = [request for _, request in self._frontier.drain()]
        for request in [*queued, *self._retrier.drain(), *self.active.values()]:
            if id(request) not in ended:
                ended.add(id(request))
                self.unfinished(request, f"not finished: crawl ended ({reason})")
        self.active.clear()
        return self.stats.unfinished - before
