"""The parse stage: ``parse_workers`` workers, each handing a fetched
response to its request's callback (or a failure to its errback) and
sending on what the callback yields: new requests to the scheduler, items to
the export stage (with a backend that journals, gathered into the request's page).

What a callback yields passes the parse hooks first (``on_output``); items
then pass the item pipelines, so an item a pipeline drops never reaches the
items output nor a journaled page.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import structlog
import trio

from .._exceptions import FetchError, HttpError
from .._frontier import Admission
from .._hooks import DROPPED, Events, HookFailed, ParseHooks, Pipelines
from .._request import Request
from .._response import Response
from .._spider import Spider
from .._state import DedupeStore, Journal
from .._util._callbacks import results_of
from ._ledger import Ledger
from ._records import Item, Outcome, Page, Shutdown

__all__ = ["ParseStage"]

log = structlog.get_logger("crawlmesh.engine")


class ParseStage:
    """Runs the spider's callbacks and errbacks (see the module).

    Args:
        spider: the spider whose callbacks run.
        workers: how many callbacks may run at once (``parse_workers``).
        ledger: the crawl's shared accounting.
        admission: what tells a redirect to a page seen already.
        journal: whether pages are journaled (then items are gathered into them).
        dedupe: what tells whether a redirect's target is new to the whole crawl.
        schedule: queues a request a callback yielded (and its parent).
        pipelines: the item pipelines.
        hooks: the parse hooks.
        events: the crawl's events (the stage waits while their handlers lag).
    """

    def __init__(
        self,
        spider: Spider,
        workers: int,
        ledger: Ledger,
        *,
        admission: Admission,
        journal: Journal,
        dedupe: DedupeStore,
        schedule: Callable[[Request, Request | None], bool],
        pipelines: Pipelines,
        hooks: ParseHooks,
        events: Events,
    ) -> None:
        self._spider = spider
        self._workers = workers
        self._ledger = ledger
        self._stats = ledger.stats
        self._admission = admission
        self._journals = journal.journals  # (read once: a Page per page only then)
        self._dedupe = dedupe
        self._schedule = schedule
        self._handled_statuses = frozenset(spider.handle_httpstatus_list)
        self._pipelines = pipelines
        self._hooks = hooks
        self._events = events

    async def run(
        self,
        parse_recv: trio.MemoryReceiveChannel[Outcome],
        item_send: trio.MemorySendChannel[Item | Page],
    ) -> None:
        """Handle outcomes until ``parse_recv`` closes."""
        async with parse_recv, item_send, trio.open_nursery() as nursery:
            for _ in range(self._workers):
                nursery.start_soon(self._worker, parse_recv.clone(), item_send.clone())

    async def _worker(
        self,
        parse_recv: trio.MemoryReceiveChannel[Outcome],
        item_send: trio.MemorySendChannel[Item | Page],
    ) -> None:
        ledger = self._ledger
        journals = self._journals
        events = self._events
        async with parse_recv, item_send:
            async for outcome in parse_recv:
                if events.lagging:
                    await events.wait_for_room()
                page = Page(outcome.request, outcome.domain) if journals else None
                try:
                    await self._handle_outcome(outcome, item_send, page)
                finally:
                    if page is not None:
                        # A request cut off by the shutdown deadline is fetched again.
                        page.finished = not isinstance(outcome.error, Shutdown)
                        await item_send.send(page)
                    ledger.active.pop(id(outcome.request), None)
                    ledger.done_one()
                del outcome, page  # free the page now, not when the next one comes

    async def _handle_outcome(
        self,
        outcome: Outcome,
        item_send: trio.MemorySendChannel[Item | Page],
        page: Page | None = None,
    ) -> None:
        request = outcome.request
        response = outcome.response
        if response is None:
            error = outcome.error
            assert error is not None
            await self._handle_failure(outcome, error, None, item_send, page)
            return
        status = response.status
        self._stats.response(outcome.domain, status, len(response.body), response.elapsed)
        if response.redirects:
            # A redirect to a page seen (or queued) already, here or by
            # another worker: as if its target were a link, a duplicate.
            duplicate, ask = self._admission.redirected(request, response.url, response.redirects)
            if ask and not await self._dedupe.seen_first(ask):
                self._admission.duplicate(request)
                duplicate = True
            if duplicate:
                return
        if not (200 <= status < 300 or status in self._handled_statuses):
            # As in Scrapy, callbacks see only 2xx unless the spider asks.
            error = HttpError(f"HTTP {status}", request=request, response=response)
            await self._handle_failure(outcome, error, status, item_send, page)
            return
        callback = request.callback or self._spider.parse
        raised = await self._call_user(
            "callback", callback, (response,), request.cb_kwargs, outcome, item_send, page
        )
        if raised is not None:
            kind, reason = raised
            self._ledger.fail(request, kind, reason, response.status, outcome=outcome)

    async def _handle_failure(
        self,
        outcome: Outcome,
        error: FetchError,
        status: int | None,
        item_send: trio.MemorySendChannel[Item | Page],
        page: Page | None,
    ) -> None:
        """A request that finally failed: its errback (if any) runs with the
        error alone, as in Scrapy (``cb_kwargs`` are the callback's; they are
        on ``error.request``), and the request ends once, with the error's
        kind. An errback that raises does not end it a second time: what it
        raised is logged and added to the reason."""
        request = outcome.request
        reason = str(error)
        errback = request.errback
        try:
            if errback is not None:
                raised = await self._call_user(
                    "errback", errback, (error,), {}, outcome, item_send, page
                )
                if raised is not None:
                    reason = f"{reason}; errback {raised[1]}"
        finally:
            # (Also when the errback is cut off by the shutdown: the request
            # failed either way.)
            self._ledger.fail(request, error.kind, reason, status, outcome=outcome)

    async def _call_user(
        self,
        role: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: Outcome,
        item_send: trio.MemorySendChannel[Item | Page],
        page: Page | None,
    ) -> tuple[str, str] | None:
        """Run a spider's callback or errback and consume what it yields.

        Returns ``None``, or the ``(kind, reason)`` the caller records as the
        request's ending: ``callback_error`` and ``"NAME raised TYPE:
        MESSAGE"`` (already logged), or a :class:`FetchError`'s own kind and
        message (a callback that finds the body unusable, as a
        SitemapSpider's gzip file over ``max_response_size``, fails the
        request as the fetch would have)."""
        try:
            result = fn(*args, **kwargs)
            await self._consume(
                result, outcome.request, outcome.response, outcome.domain, item_send, page
            )
        except FetchError as exc:
            return exc.kind, str(exc)
        except Exception as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                f"{role} raised", **outcome.log_keys(), **{role: name}, error=error, exc_info=exc
            )
            return "callback_error", f"{name} raised {error}"
        return None

    async def _consume(
        self,
        result: Any,
        parent: Request,
        response: Response | None,
        domain: str,
        item_send: trio.MemorySendChannel[Item | Page],
        page: Page | None,
    ) -> None:
        schedule = self._schedule
        piped = self._pipelines.active
        source: AsyncIterable[Any] = results_of(result)
        if self._hooks.active:
            source = self._hooked(source, response, parent, domain)
        async for out in source:
            if isinstance(out, Request):
                schedule(out, parent)
                continue
            if out is None:
                continue
            if piped:
                out = await self._pipelines.process(out, parent, domain, self._spider)
                if out is DROPPED:
                    continue
            if page is not None:
                page.items.append(out)  # exported with the page, all at once
            else:
                await item_send.send((out, parent, domain))

    async def _hooked(
        self, results: AsyncIterable[Any], response: Response | None, parent: Request, domain: str
    ) -> AsyncIterator[Any]:
        """A page's outputs through the parse hooks, all at once (see
        :mod:`crawlmesh._hooks._parse`); what the callback yielded before
        it raised is handed on, then its exception raised."""
        outputs: list[Any] = []
        raised: Exception | None = None
        try:
            async for out in results:
                outputs.append(out)
        except Exception as exc:
            raised = exc
        for out in await self._through_hooks(response, outputs, parent, domain):
            yield out
        if raised is not None:
            raise raised

    async def _through_hooks(
        self, response: Response | None, outputs: list[Any], parent: Request, domain: str
    ) -> list[Any]:
        """What the hooks hand on; each output they leave out is counted (a
        request as a filter, an item as dropped), or written off when a hook failed."""
        try:
            kept = await self._hooks.output(response, outputs)
        except HookFailed as failed:
            lost = 0
            for out in outputs:
                if isinstance(out, Request):
                    self._ledger.fail(out, "hook_error", failed.reason, parent=parent)
                elif out is not None:
                    lost += 1
            if lost:
                reason = f"{lost} item(s) lost: {failed.reason}"
                self._ledger.fail(parent, "hook_error", reason, domain=domain)
            return []
        ids = {id(out) for out in kept}
        for out in outputs:
            if id(out) in ids or out is None:
                continue
            if isinstance(out, Request):
                self._ledger.filtered(out, "dropped_by_hook")
            else:
                self._stats.items_dropped["dropped_by_hook"] += 1
        return kept
