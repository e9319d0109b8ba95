"""The dispatch stage: the spider's start requests into the scheduler, and
the frontier, as politeness allows, into the fetch channel.

The start requests are read only while the frontier has room for them
(``concurrency * 4``), so a large ``start()`` does not fill memory. The
dispatcher sleeps on the ledger's change event (or until politeness or a
parked retry says a domain is ready) and ends the crawl's dispatching when
nothing is pending and ``start()`` is exhausted, or ``max_pages`` is reached.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio

from .._exceptions import CircuitOpen
from .._frontier import Frontier
from .._hooks import HookFailed, ParseHooks
from .._request import Request
from .._resilience._retrying import Retrier
from .._settings import Settings
from .._shaping import Politeness
from .._spider import Spider
from .._state import RequestStore
from .._util._callbacks import iterate_result
from ._holds import CircuitHolds
from ._ledger import Ledger
from ._records import Dispatched

__all__ = ["DispatchStage"]

log = structlog.get_logger("crawlmesh.engine")


class DispatchStage:
    """Feeds the fetch stage (see the module).

    Args:
        settings: resolved settings.
        spider: the spider whose ``start()`` is read.
        ledger: the crawl's shared accounting.
        frontier: queued requests.
        politeness: which domains may take a request now.
        retrier: retries parked until they are due.
        holds: the domains the breakers hold.
        store: where the crawl's requests are stored.
        schedule: queues a start request.
        hooks: the parse hooks (``on_start`` sees each start request).
    """

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        ledger: Ledger,
        *,
        frontier: Frontier,
        politeness: Politeness,
        retrier: Retrier,
        holds: CircuitHolds,
        store: RequestStore,
        schedule: Callable[[Request], bool],
        hooks: ParseHooks,
    ) -> None:
        self._hooks = hooks
        self._settings = settings
        self._spider = spider
        self._ledger = ledger
        self._frontier = frontier
        self._politeness = politeness
        self._retrier = retrier
        # (The same set as the gate's: the domains it gave up on.)
        self._expired: set[str] = holds.expired
        self._store = store
        self._schedule = schedule
        self.start_done = False
        """Whether ``start()`` is exhausted (or, resumed, was)."""
        self._room = trio.Event()  # set when the frontier has room for start requests
        self._start_scope = trio.CancelScope()

    def cancel_start(self) -> None:
        """Stop reading ``start()``."""
        self._start_scope.cancel()

    def restart(self) -> bool:
        """Make ready to read ``start()`` again (the backend's seeder died);
        False if it is being read, or the crawl is stopping."""
        if not self.start_done or self._ledger.stop_reason is not None:
            return False
        self.start_done = False
        self._start_scope = trio.CancelScope()
        return True

    async def start(self) -> None:
        """Schedule the spider's start requests, while the frontier has room."""
        ledger = self._ledger
        backlog = self._settings.concurrency * 4
        with self._start_scope:
            try:
                async for request in iterate_result(start_requests(self._spider)):
                    while len(self._frontier) >= backlog and ledger.stop_reason is None:
                        self._room = trio.Event()
                        await self._room.wait()
                    await self._store.room()
                    if self._hooks.active_start and isinstance(request, Request):
                        request = await self._hooked(request)
                        if request is None:
                            continue
                    if isinstance(request, Request):
                        self._schedule(request)
                    else:
                        log.error("start() yielded a non-Request; ignored", value=repr(request))
            except Exception as exc:
                log.error("start() raised", error=repr(exc), exc_info=True)
                ledger.stats.errors["start_error"] += 1
        self.start_done = True
        if ledger.stop_reason is None:
            self._store.mark_start_done()
        ledger.notify()

    async def _hooked(self, request: Request) -> Request | None:
        """A start request through the ``on_start`` hooks: what to schedule,
        or None (dropped and counted, or written off as ``hook_error``)."""
        try:
            out = await self._hooks.start(request)
        except HookFailed as failed:
            self._ledger.fail(request, "hook_error", failed.reason)
            return None
        if out is None:
            self._ledger.filtered(request, "dropped_by_hook")
            return None
        if not isinstance(out, Request):
            reason = f"an on_start hook returned {type(out).__name__}, not a Request"
            self._ledger.fail(request, "hook_error", reason)
            return None
        return out

    async def run(self, fetch_send: trio.MemorySendChannel[Dispatched]) -> None:
        """Dispatch until the crawl is done or stopping, then close ``fetch_send``."""
        ledger = self._ledger
        politeness = self._politeness
        frontier = self._frontier
        max_pages = self._settings.max_pages
        backlog = self._settings.concurrency * 4
        store = self._store
        async with fetch_send:
            while ledger.stop_reason is None:
                if ledger.pending == 0 and self.start_done and store.drained:
                    return
                if max_pages and ledger.dispatched >= max_pages:
                    ledger.request_stop("max_pages")
                    return
                ledger.changed = trio.Event()
                for domain, request in self._retrier.due(trio.current_time()):
                    frontier.push(domain, request)  # still pending: not counted again
                politeness.wake_at = self._retrier.next_due
                got = frontier.pop(politeness.ready)
                if self._expired:
                    self._expire_held()
                if len(frontier) < backlog:
                    self._room.set()
                if got is None:
                    with trio.move_on_at(politeness.wake_at):
                        await ledger.changed.wait()
                    continue
                domain = got[0]
                politeness.acquire(domain)
                ledger.dispatched += 1
                ledger.active[id(got[1])] = got[1]
                await fetch_send.send(got)

    def _expire_held(self) -> None:
        """Write off the requests of domains no node could serve for too long."""
        ledger = self._ledger
        timeout = self._settings.breaker.park_timeout
        for domain in self._expired:
            for request in self._frontier.remove(domain):
                attempts = self._retrier.done(request)
                ledger.fail(
                    request,
                    CircuitOpen.kind,
                    f"no node could serve {domain} for {timeout:g} s: circuit breakers open",
                    domain=domain,
                    attempt=attempts,
                )
                ledger.finished(request)
                ledger.active.pop(id(request), None)
                ledger.done_one()
        self._expired.clear()


def start_requests(spider: Spider) -> object:
    """What the spider starts from: ``start()``, or a Scrapy-style
    ``start_requests()`` when the spider defines one and not ``start()``."""
    legacy = getattr(spider, "start_requests", None)
    if callable(legacy) and type(spider).start is Spider.start:
        return legacy()
    return spider.start()
