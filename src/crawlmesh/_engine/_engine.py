"""The engine: wires the stages of a crawl in one nursery.

::

    start() ─┐                      (bounded channels, backpressure)
             ▼
    frontier ── dispatch ──▶ fetch x concurrency ──▶ parse x workers ──▶ export
       ▲   (politeness:          (robots, transport,        (callbacks,          (JSON lines)
       │    per-domain slots      whole-request deadline)    errbacks)
       │    and delays)                                         │
       └──────────────────── new requests (dedupe, filters) ◀───┘

A request is *pending* from the moment the frontier accepts it until its
callback (or errback) has finished; the crawl is over when nothing is
pending and ``start()`` is exhausted. Every request ends exactly one way: a
response handed to its callback, a policy filter counted in stats, or a line
in the errors file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import structlog
import trio

from .._balancer._balancer import Balancer
from .._balancer._build import build_transport
from .._balancer._mesh import reload_nodes, run_mesh_upkeep
from .._balancer._types import NodeSpec
from .._exceptions import (
    CircuitOpen,
    FetchError,
    FetchTimeout,
    HttpError,
    RequestError,
    plain_errors,
)
from .._frontier._admission import Admission
from .._frontier._dedupe import FingerprintSet
from .._frontier._queue import DupeFilter, Frontier, MemoryFrontier
from .._observe._progress import report_progress
from .._observe._record import CrawlStats
from .._observe._stats import StatsCollector
from .._request import Request
from .._resilience import RetryBudgetStatistics
from .._resilience._retrying import Retrier
from .._response import Response
from .._settings import Settings
from .._shaping._aimd import AimdController
from .._shaping._politeness import Politeness
from .._shaping._retry_after import parse_retry_after
from .._shaping._shaper import Shaper
from .._spider import Spider
from .._state._backend import Backend, Resume
from .._state._records import NotPersistable
from .._transport._base import FetchOptions, Transport, is_node_fault
from .._util._log import configure_logging, debug_enabled, request_keys
from .._util._tally import RateWaits
from .._util._url import split_http_url
from ._callbacks import iterate_result, results_of
from ._export import ErrorRecord, JsonLinesWriter
from ._robots import RobotsCache

__all__ = ["Engine"]

log = structlog.get_logger("crawlmesh.engine")


# A 429 or 503 with Retry-After pauses its domain for as long as it says; both,
# and timeouts, halve the domain's AIMD concurrency.
_PUSHBACK_STATUSES = frozenset({429, 503})
_Dispatched = tuple[str, Request]  # (domain, request)
_Item = tuple[Any, Request, str]  # (item, the request whose callback produced it, its domain)


class _Page:
    """With a backend: one request's items, exported as one batch
    and journaled as finished with it (``finished``: False when a shutdown
    interrupted it, so a resume fetches it again)."""

    __slots__ = ("domain", "finished", "items", "request")

    def __init__(self, request: Request, domain: str) -> None:
        self.request = request
        self.domain = domain
        self.items: list[Any] = []
        self.finished = True


class _Outcome:
    """What the fetch stage hands the parse stage (``attempt``: from 1)."""

    __slots__ = ("attempt", "domain", "error", "request", "response")

    def __init__(
        self,
        request: Request,
        response: Response | None,
        error: FetchError | None,
        domain: str,
        attempt: int = 1,
    ) -> None:
        self.request = request
        self.response = response
        self.error = error
        self.domain = domain
        self.attempt = attempt

    def log_keys(self) -> dict[str, Any]:
        """The request's keys for a log line about this outcome."""
        node = self.response.node if self.response is not None else getattr(self.error, "node", "")
        return request_keys(self.request.url, self.domain, node, self.attempt)


class _Shutdown(FetchError):
    kind = "shutdown"


class Engine:
    """Runs one spider to completion.

    Args:
        spider: the spider instance.
        settings: resolved settings.
        items: where items go.
        errors: where failed requests go (None: only counted and logged).
        transport: the fetch transport (default: :class:`DirectTransport`).
        frontier: queued requests (default: in memory).
        dupefilter: seen fingerprints (default: in memory).
        backend: where the crawl's state lives beyond this process (a
            :class:`~crawlmesh._state._jobdir.JobDir` to resume from, or a
            :class:`~crawlmesh._state._redis.RedisBackend` shared by many workers);
            its dupe filter replaces ``dupefilter``.
    """

    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        *,
        items: JsonLinesWriter,
        errors: JsonLinesWriter | None = None,
        transport: Transport | None = None,
        frontier: Frontier | None = None,
        dupefilter: DupeFilter | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.spider = spider
        self.settings = settings
        spider.settings = settings
        self._items = items
        self._errors = errors
        self._transport: Transport = transport or build_transport(settings)
        self.balancer: Balancer | None = getattr(self._transport, "balancer", None)
        # (``is None``, not ``or``: an empty frontier or dupe filter is falsy.)
        self._frontier: Frontier = MemoryFrontier() if frontier is None else frontier
        self._options = FetchOptions(
            connect_timeout=settings.timeouts.connect,
            read_timeout=settings.timeouts.read,
            max_response_size=settings.max_response_size,
            max_redirects=settings.max_redirects,
            user_agent=settings.user_agent,
            default_headers=settings.default_headers,
        )
        self.rate_waits = RateWaits()
        """Requests held back by rate limits, by reason (for the metrics)."""
        self._politeness = Politeness(
            settings.concurrency_per_domain,
            settings.download_delay,
            Shaper(settings.rates) if settings.rates else None,
            aimd=self._aimd_factory(settings),
            gate=self._circuit_gate if self.balancer is not None else None,
            waits=self.rate_waits,
        )
        if self.balancer is not None:
            self.balancer.rate_waits = self.rate_waits
        # Domains no node could serve, since when; and those held too long.
        self._held_since: dict[str, float] = {}
        self._expired: set[str] = set()
        self._robots = RobotsCache(
            self._transport, self._options, settings.robots.user_agent, self._on_crawl_delay
        )
        self._handled_statuses = frozenset(spider.handle_httpstatus_list)
        self._retrier = Retrier(settings.retry)
        self.stats = StatsCollector()
        self._backend = backend
        if backend is not None and self.balancer is not None:
            self.balancer.share = backend.mesh_share
        # A domain's rate is shared by every worker when the backend is.
        self._shared_rates = (
            Shaper(settings.rates)
            if backend is not None and backend.shared and settings.rates
            else None
        )
        seen: DupeFilter = FingerprintSet() if dupefilter is None else dupefilter
        self._admission = Admission(
            seen if backend is None else backend.dupefilter,
            allowed_domains=spider.allowed_domains,
            depth_limit=settings.depth_limit,
            filtered=self.stats.filtered,
            on_invalid=lambda request, exc, parent: self._fail(
                request, exc.kind, str(exc), parent=parent
            ),
            on_seen=(lambda fp: None) if backend is None else backend.seen,
        )
        self._pending = 0
        self._dispatched = 0
        self._start_done = False
        self._changed = trio.Event()
        self._room = trio.Event()  # set when the frontier has room for start requests
        self._stop_reason: str | None = None
        self._start_scope = trio.CancelScope()
        self._stages: trio.Nursery | None = None
        self._crawl_totals: dict[str, int] = {}
        self._inflight: set[trio.CancelScope] = set()
        # Requests taken from the frontier and not yet ended (being fetched,
        # parked for a retry, waiting for or in their callback), by id: what
        # an immediate exit must still account for.
        self._active: dict[int, Request] = {}
        self._nursery: trio.Nursery | None = None
        self.output_error: OSError | None = None
        self._item_recv: trio.MemoryReceiveChannel[_Item | _Page] | None = None
        self._debug = False  # log a line per response (read once, in run())

    # -- public ------------------------------------------------------------

    def request_stop(self, reason: str = "shutdown") -> None:
        """Stop scheduling; in-flight requests get ``shutdown_timeout`` to finish."""
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        log.info("stopping", reason=reason, in_flight=len(self._inflight))
        self._start_scope.cancel()
        self._notify()
        if self._nursery is not None:
            self._nursery.start_soon(self._enforce_deadline)

    @property
    def retries(self) -> int:
        """Attempts beyond the first, so far."""
        return self._retrier.retries

    @property
    def retry_budget_refusals(self) -> int:
        """Retries the retry budget refused, so far."""
        return self._retrier.budget_refusals

    def retry_budget(self) -> RetryBudgetStatistics:
        """The retry budget now: its window's requests and retries, and the
        retries it would allow."""
        return self._retrier.budget.statistics()

    def backlog(self) -> tuple[int, int]:
        """(requests queued in this process, requests being fetched)."""
        return len(self._frontier), len(self._inflight)

    def use_nodes(self, specs: Sequence[NodeSpec]) -> None:
        """Use ``specs`` as the node mesh; call before :meth:`run`."""
        if self.balancer is None:
            raise RuntimeError("this engine has a custom transport, not a node mesh")
        self.balancer.reset(specs)

    def reload_nodes(self) -> bool:
        """Re-read the node file (on SIGHUP); a bad file keeps the old mesh."""
        if self.balancer is None:
            return False
        return reload_nodes(self.balancer, self.settings)

    def flush_now(self) -> int:
        """Write the items already queued for export, synchronously.

        For an immediate exit (a second Ctrl-C): items still inside running
        callbacks are lost, but none that were produced. Returns how many
        items were written.
        """
        written = 0
        recv = self._item_recv
        while recv is not None and self.output_error is None:
            try:
                message = recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(message, _Page):
                written += self._export_page(message)
            elif self._export_one(*message):
                written += 1
        return written

    def abandon_now(self, reason: str) -> int:
        """Account, synchronously, for every request not ended yet, for an
        immediate exit (a second Ctrl-C): queued, parked for a retry, being
        fetched or in a callback, each is written to the errors file as
        ``unfinished`` (with a backend, which keeps them for a resume,
        only counted). Returns how many there were."""
        before = self.stats.unfinished
        ended: set[int] = set()
        queued = [request for _, request in self._frontier.drain()]
        for request in [*queued, *self._retrier.drain(), *self._active.values()]:
            if id(request) not in ended:
                ended.add(id(request))
                self._unfinished(request, f"not finished: crawl ended ({reason})")
        self._active.clear()
        return self.stats.unfinished - before

    def unfinished_where(self) -> str:
        """Where requests left unfinished go, for a message."""
        if self._backend is not None:
            return "kept for a resume"
        if self._errors is not None:
            return "written to the errors file"
        return "lost: no errors file (--errors)"

    async def run(self) -> CrawlStats:
        """Crawl until done or stopped; returns the final statistics."""
        if not structlog.is_configured():
            # Library use without configure_logging(): keep stdout for items.
            configure_logging(self.settings.log_level)
        self._debug = debug_enabled()
        self.stats.started = trio.current_time()
        # (A backend's client runs a task group: its errors arrive wrapped.)
        with plain_errors():
            async with AsyncExitStack() as stack:
                if self._backend is not None:
                    connect = self._backend.connect(_Link(self), self.stats)
                    try:
                        self._resume(await stack.enter_async_context(connect))
                    except BaseException:
                        with trio.CancelScope(shield=True):
                            await self._transport.aclose()
                        raise
                reason = await self._run_stages()

        try:
            await self.spider.closed(reason)
        except Exception as exc:
            log.error("spider.closed() raised", error=repr(exc), exc_info=exc)
        self.stats.retries = self._retrier.retries
        self.stats.retry_budget_refusals = self._retrier.budget_refusals
        self.stats.node_retries = self._retrier.retries_by_node
        snapshot = self.stats.snapshot(reason, self._robots.fetched, self.balancer)
        if self._crawl_totals:
            snapshot = msgspec.structs.replace(snapshot, crawl_totals=self._crawl_totals)
        return snapshot

    async def _run_stages(self) -> str:
        """Run the stages until they drain; returns the finish reason."""
        concurrency = self.settings.concurrency
        try:
            async with trio.open_nursery() as outer:
                self._nursery = outer
                outer.start_soon(
                    report_progress,
                    self.settings.progress_interval,
                    self.stats,
                    self.backlog,
                    self.balancer,
                )
                if self.balancer is not None:
                    outer.start_soon(run_mesh_upkeep, self.balancer, self.settings)
                if self._backend is not None:
                    outer.start_soon(self._backend.run)
                fetch_send, fetch_recv = trio.open_memory_channel[_Dispatched](0)
                parse_send, parse_recv = trio.open_memory_channel[_Outcome](concurrency)
                item_send, item_recv = trio.open_memory_channel[_Item | _Page](256)
                self._item_recv = item_recv
                async with trio.open_nursery() as stages:
                    self._stages = stages
                    stages.start_soon(self._export_stage, item_recv)
                    stages.start_soon(self._parse_stage, parse_recv, item_send)
                    stages.start_soon(self._fetch_stage, fetch_recv, parse_send)
                    stages.start_soon(self._dispatch_stage, fetch_send)
                    if not self._start_done:
                        stages.start_soon(self._start_stage)
                self._stages = None
                # Everything has drained: stop the shutdown deadline and progress.
                outer.cancel_scope.cancel()
        finally:
            self._nursery = None
            reason = self._stop_reason or "finished"
            self._account_unfinished(reason)
            if self._backend is not None:
                with trio.CancelScope(shield=True):
                    totals = await self._backend.aclose(self.stats, self._items.length())
                self._crawl_totals = totals or {}
            await self._transport.aclose()
        return reason

    @staticmethod
    def _aimd_factory(settings: Settings) -> Callable[[], AimdController] | None:
        t = settings.throttle
        if not t.enabled:
            return None
        maximum = settings.concurrency_per_domain
        start = min(t.start or maximum, maximum)
        minimum = min(t.minimum, start)
        return lambda: AimdController(
            start,
            maximum=maximum,
            minimum=minimum,
            target_latency=t.target_latency or None,
            backoff=t.backoff,
            cooldown=t.cooldown,
            quiet=t.quiet,
        )

    # -- scheduling ----------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()

    def schedule(self, request: Request, parent: Request | None = None) -> bool:
        """Filter, dedupe and queue one request; True if it was queued.

        While the crawl is stopping, a request that passes the filters is not
        queued but written to the errors file as ``unfinished``.
        """
        if parent is not None:
            request.referer = parent.url  # (before admission: its refusals name it too)
        parts = self._admission.admit(request, parent)
        if parts is None:
            return False
        host = parts.hostname or ""
        local = True
        if self._backend is not None:
            try:
                # (While stopping too: the backend keeps it for a later run.)
                local = self._backend.queued(
                    host, request, self._admission.last_fingerprint, seed=parent is None
                )
            except NotPersistable as exc:
                self._fail(request, "not_persistable", str(exc), parent=parent)
                return False
        if self._stop_reason is not None:
            # Nothing new is scheduled while stopping, but nothing is lost.
            self._unfinished(request, f"not scheduled: crawl stopping ({self._stop_reason})")
            return False
        if not local:  # queued in the shared backend; a worker will claim it
            self.stats.scheduled += 1
            return True
        if self.settings.robots.obey and not self._robots.is_loaded(parts):
            # One request at a time until robots.txt (and its Crawl-delay) is known.
            self._politeness.hold(host)
        self._frontier.push(host, request)
        self._pending += 1
        self.stats.scheduled += 1
        self._changed.set()
        return True

    def _on_crawl_delay(self, host: str, delay: float) -> None:
        log.info("robots.txt asks for a crawl delay", domain=host, delay=delay)
        self._politeness.set_delay(host, delay)

    def _done_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._changed.set()

    async def _start_stage(self) -> None:
        backlog = self.settings.concurrency * 4
        with self._start_scope:
            try:
                async for request in iterate_result(self.spider.start()):
                    while len(self._frontier) >= backlog and self._stop_reason is None:
                        self._room = trio.Event()
                        await self._room.wait()
                    if self._backend is not None:
                        await self._backend.room()
                    if isinstance(request, Request):
                        self.schedule(request)
                    else:
                        log.error("start() yielded a non-Request; ignored", value=repr(request))
            except Exception as exc:
                log.error("start() raised", error=repr(exc), exc_info=True)
                self.stats.errors["start_error"] += 1
        self._start_done = True
        if self._backend is not None and self._stop_reason is None:
            self._backend.mark_start_done()
        self._notify()

    async def _dispatch_stage(self, fetch_send: trio.MemorySendChannel[_Dispatched]) -> None:
        politeness = self._politeness
        frontier = self._frontier
        max_pages = self.settings.max_pages
        backlog = self.settings.concurrency * 4
        async with fetch_send:
            while self._stop_reason is None:
                if (
                    self._pending == 0
                    and self._start_done
                    and (self._backend is None or self._backend.drained)
                ):
                    return
                if max_pages and self._dispatched >= max_pages:
                    self.request_stop("max_pages")
                    return
                self._changed = trio.Event()
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
                        await self._changed.wait()
                    continue
                domain = got[0]
                politeness.acquire(domain)
                self._dispatched += 1
                self._active[id(got[1])] = got[1]
                await fetch_send.send(got)

    def _circuit_gate(self, domain: str) -> float:
        """When ``domain`` may take a request, as far as breakers go; notes
        domains that no node could serve for ``breaker.park_timeout``."""
        assert self.balancer is not None
        until, by_breakers = self.balancer.blocked_until(domain)
        if until == -math.inf:
            return until
        now = trio.current_time()
        if until <= now:
            return until
        if not by_breakers:  # only waiting for a per-node rate
            self._politeness.note_wait(domain, until, "node_rate")
            return until
        since = self._held_since.get(domain)
        if since is None:
            since = self._held_since[domain] = now
            self.stats.circuit_holds += 1
            log.info("holding a domain: no node can serve it", domain=domain)
        deadline = since + self.settings.breaker.park_timeout
        if now >= deadline:
            self._expired.add(domain)  # the dispatcher writes its requests off
            return until
        return min(until, deadline)

    def _expire_held(self) -> None:
        timeout = self.settings.breaker.park_timeout
        for domain in self._expired:
            for request in self._frontier.remove(domain):
                attempts = self._retrier.done(request)
                self._fail(
                    request,
                    CircuitOpen.kind,
                    f"no node could serve {domain} for {timeout:g} s: circuit breakers open",
                    domain=domain,
                    attempt=attempts,
                )
                self._finished(request)
                self._active.pop(id(request), None)
                self._done_one()
        self._expired.clear()

    async def _enforce_deadline(self) -> None:
        await trio.sleep(self.settings.shutdown_timeout)
        if self._inflight:
            log.warning("shutdown deadline passed; interrupting", in_flight=len(self._inflight))
        for scope in list(self._inflight):
            scope.cancel()

    # -- fetch ---------------------------------------------------------------

    async def _fetch_stage(
        self,
        fetch_recv: trio.MemoryReceiveChannel[_Dispatched],
        parse_send: trio.MemorySendChannel[_Outcome],
    ) -> None:
        async with fetch_recv, parse_send, trio.open_nursery() as nursery:
            for _ in range(self.settings.concurrency):
                nursery.start_soon(self._fetch_worker, fetch_recv.clone(), parse_send.clone())

    async def _fetch_worker(
        self,
        fetch_recv: trio.MemoryReceiveChannel[_Dispatched],
        parse_send: trio.MemorySendChannel[_Outcome],
    ) -> None:
        async with fetch_recv, parse_send:
            async for domain, request in fetch_recv:
                started = trio.current_time()
                try:
                    outcome = await self._fetch_one(domain, request)
                finally:
                    self._politeness.release(domain)
                    self._changed.set()
                if outcome is None:
                    self._retrier.done(request)
                    self._finished(request)
                    self._active.pop(id(request), None)
                    self._done_one()
                    continue
                if isinstance(outcome.error, CircuitOpen) and self._stop_reason is None:
                    # Not an attempt: back to the frontier, where the gate
                    # holds it until a breaker admits its domain.
                    self._active.pop(id(request), None)
                    self._frontier.push(domain, request)
                    self._dispatched -= 1  # not an attempt: max_pages counts fetches
                    continue
                latency = trio.current_time() - started
                retry_after = self._learn(domain, outcome, latency)
                if self._debug and outcome.response is not None:
                    log.debug(
                        "fetched",
                        **outcome.log_keys(),
                        status=outcome.response.status,
                        ms=round(latency * 1000, 1),
                    )
                if self._stop_reason is None and self._retrier.consider(
                    domain, request, outcome.response, outcome.error, retry_after
                ):
                    self.stats.retried(domain)
                    self._changed.set()  # the dispatcher must wake for it
                    continue
                self._retrier.done(request)
                await parse_send.send(outcome)
                # Not kept until the next fetch ends: the parse worker frees
                # the page (its parsed tree too) once done with it, while the
                # tree is still in the CPU's caches.
                outcome = None

    async def _fetch_one(self, domain: str, request: Request) -> _Outcome | None:
        settings = self.settings
        attempt = 1
        with trio.CancelScope() as scope:
            self._inflight.add(scope)
            try:
                if settings.robots.obey:
                    parts = split_http_url(request.url)
                    verdict = await self._robots.check(request.url, parts)
                    self._politeness.unhold(domain)
                    self._notify()  # the domain may take more requests now
                    if not verdict.allowed:
                        if verdict.reason == "robots":
                            self.stats.filtered["robots"] += 1
                            if self._debug:
                                log.debug(
                                    "disallowed by robots.txt",
                                    **request_keys(request.url, domain, None, 0),
                                )
                            return None
                        error = FetchError(
                            "robots.txt unavailable (5xx or unreachable): origin disallowed",
                            request=request,
                            kind="robots_unavailable",
                        )
                        return _Outcome(request, None, error, domain, 0)
                if self._shared_rates is not None:
                    shared = self._shared_rates.rate_of(domain)
                    if shared is not None and self._backend is not None:
                        waited = await self._backend.gate(domain, *shared)  # the crawl's rate
                        if waited > 0:
                            self.rate_waits.add("shared", waited)
                options = self._retrier.options_for(request, self._options)
                attempt = options.attempt
                # Through the mesh, each attempt on a node has its own deadline
                # (kind and domain overrides included); this one bounds a
                # custom transport.
                if self.balancer is not None:
                    response = await self._transport.fetch(request, options)
                    return _Outcome(request, response, None, domain, attempt)
                with trio.move_on_after(settings.timeouts.total) as total:
                    response = await self._transport.fetch(request, options)
                if total.cancelled_caught:
                    raise FetchTimeout(
                        f"request took longer than {settings.timeouts.total:g} s",
                        request=request,
                        kind="total_timeout",
                    )
                return _Outcome(request, response, None, domain, attempt)
            except FetchError as exc:
                exc.request = request
                return _Outcome(request, None, exc, domain, attempt)
            except RequestError as exc:
                # A URL the transport refuses outright: a failure of this request only.
                failure = FetchError(str(exc), request=request, kind=exc.kind)
                return _Outcome(request, None, failure, domain, attempt)
            finally:
                self._inflight.discard(scope)
        # Only reached when the shutdown deadline cancelled the fetch.
        shutdown = _Shutdown("interrupted by shutdown", request=request)
        return _Outcome(request, None, shutdown, domain, attempt)

    def _learn(self, domain: str, outcome: _Outcome, latency: float) -> float | None:
        """Feed an outcome to the domain's throttle (and its hold); returns
        the Retry-After it carried, in seconds, if any."""
        response = outcome.response
        retry_after = None
        if response is not None:
            pushback = response.status in _PUSHBACK_STATUSES
            if pushback:
                retry_after = self._pause_for(domain, response, outcome)
            elif response.status < 500 and self._held_since:
                self._held_since.pop(domain, None)  # served again
            # Only answers the site was glad to give count as successes.
            success = not pushback and response.status < 500
        else:
            error = outcome.error
            assert error is not None
            # A target timeout is pushback; other errors (resets, bans, node
            # faults) say nothing about the domain's load.
            pushback = error.kind.endswith("timeout") and not is_node_fault(error)
            success = False
        before = self._politeness.limit(domain)
        self._politeness.observe(domain, latency if success else None, pushback=pushback)
        if self._politeness.limit(domain) < before:
            self.stats.throttle_decreases += 1
            log.info(
                "lowering a domain's concurrency",
                **outcome.log_keys(),
                limit=self._politeness.limit(domain),
            )
        return retry_after

    def _pause_for(self, domain: str, response: Response, outcome: _Outcome) -> float | None:
        """Pause a domain that pushed back: for as long as its Retry-After
        says, else for ``throttle.pushback_pause``. Returns the Retry-After."""
        value = response.headers.get("retry-after")
        delay = None
        if value is not None:
            delay = parse_retry_after(value, time.time(), max_delay=self.settings.retry_after_max)
            if delay is None:
                log.info("ignoring an unreadable Retry-After", **outcome.log_keys(), value=value)
        if delay is None:
            throttle = self.settings.throttle
            if throttle.enabled and throttle.pushback_pause:
                # With no Retry-After to go by, a short pause: fewer requests
                # in flight do not slow a site that refuses them at once.
                self._politeness.pause(domain, trio.current_time() + throttle.pushback_pause)
            return None
        until = trio.current_time() + delay
        node = response.node
        paused = (
            self.balancer is not None and node and self.balancer.pause_node(node, domain, until)
        )
        if not paused:  # under a per-node rate, only the (node, domain) pair pauses
            self._politeness.pause(domain, until)
            if self._backend is not None:
                self._backend.pause(domain, delay)  # every worker pauses
        self.stats.paused(domain)
        log.info(
            "pausing a domain as Retry-After asks",
            **outcome.log_keys(),
            seconds=round(delay, 3),
            status=response.status,
        )
        return delay

    # -- parse ---------------------------------------------------------------

    async def _parse_stage(
        self,
        parse_recv: trio.MemoryReceiveChannel[_Outcome],
        item_send: trio.MemorySendChannel[_Item | _Page],
    ) -> None:
        async with parse_recv, item_send, trio.open_nursery() as nursery:
            for _ in range(self.settings.parse_workers):
                nursery.start_soon(self._parse_worker, parse_recv.clone(), item_send.clone())

    async def _parse_worker(
        self,
        parse_recv: trio.MemoryReceiveChannel[_Outcome],
        item_send: trio.MemorySendChannel[_Item | _Page],
    ) -> None:
        async with parse_recv, item_send:
            async for outcome in parse_recv:
                page = _Page(outcome.request, outcome.domain) if self._backend is not None else None
                try:
                    await self._handle_outcome(outcome, item_send, page)
                finally:
                    if page is not None:
                        # A request cut off by the shutdown deadline is fetched again.
                        page.finished = not isinstance(outcome.error, _Shutdown)
                        await item_send.send(page)
                    self._active.pop(id(outcome.request), None)
                    self._done_one()
                del outcome, page  # free the page now, not when the next one comes

    async def _handle_outcome(
        self,
        outcome: _Outcome,
        item_send: trio.MemorySendChannel[_Item | _Page],
        page: _Page | None = None,
    ) -> None:
        request = outcome.request
        response = outcome.response
        stats = self.stats
        if response is None:
            error = outcome.error
            assert error is not None
            await self._handle_failure(outcome, error, None, item_send, page)
            return
        status = response.status
        stats.response(outcome.domain, status, len(response.body), response.elapsed)
        if response.redirects:
            # A redirect to a page seen (or queued) already, here or by
            # another worker: as if its target were a link, a duplicate.
            duplicate, ask = self._admission.redirected(request, response.url, response.redirects)
            if ask and self._backend is not None and not await self._backend.seen_first(ask):
                self._admission.duplicate()
                duplicate = True
            if duplicate:
                return
        if not (200 <= status < 300 or status in self._handled_statuses):
            # As in Scrapy, callbacks see only 2xx unless the spider asks.
            error = HttpError(f"HTTP {status}", request=request, response=response)
            await self._handle_failure(outcome, error, status, item_send, page)
            return
        callback = request.callback or self.spider.parse
        raised = await self._call_user(
            "callback", callback, (response,), request.cb_kwargs, outcome, item_send, page
        )
        if raised is not None:
            self._fail(request, "callback_error", raised, response.status, outcome=outcome)

    async def _handle_failure(
        self,
        outcome: _Outcome,
        error: FetchError,
        status: int | None,
        item_send: trio.MemorySendChannel[_Item | _Page],
        page: _Page | None,
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
                    reason = f"{reason}; errback {raised}"
        finally:
            # (Also when the errback is cut off by the shutdown: the request
            # failed either way.)
            self._fail(request, error.kind, reason, status, outcome=outcome)

    async def _call_user(
        self,
        role: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: _Outcome,
        item_send: trio.MemorySendChannel[_Item | _Page],
        page: _Page | None,
    ) -> str | None:
        """Run a spider's callback or errback and consume what it yields.

        Returns ``None``, or what it raised (``"NAME raised TYPE: MESSAGE"``,
        already logged) for the caller to record as the request's ending."""
        try:
            result = fn(*args, **kwargs)
            await self._consume(result, outcome.request, outcome.domain, item_send, page)
        except Exception as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                f"{role} raised", **outcome.log_keys(), **{role: name}, error=error, exc_info=exc
            )
            return f"{name} raised {error}"
        return None

    async def _consume(
        self,
        result: Any,
        parent: Request,
        domain: str,
        item_send: trio.MemorySendChannel[_Item | _Page],
        page: _Page | None,
    ) -> None:
        async for out in results_of(result):
            if isinstance(out, Request):
                self.schedule(out, parent)
            elif out is None:
                continue
            elif page is not None:
                page.items.append(out)  # exported with the page, all at once
            else:
                await item_send.send((out, parent, domain))

    # -- export --------------------------------------------------------------

    async def _export_stage(self, item_recv: trio.MemoryReceiveChannel[_Item | _Page]) -> None:
        async with item_recv:
            async for message in item_recv:
                if isinstance(message, _Page):
                    self._export_page(message)
                else:
                    self._export_one(*message)

    def _export_page(self, page: _Page) -> int:
        """Write a page's items, then journal it as finished, with nothing
        between that could let another page's items in; returns how many
        items were written."""
        if not page.finished:
            return 0  # cut off by the shutdown: fetched again, its items with it
        written = sum(self._export_one(item, page.request, page.domain) for item in page.items)
        if self.output_error is None:
            # (Items that could not be written leave the page to a resume.)
            self._finished(page.request)
        return written

    def _finished(self, request: Request) -> None:
        """With a backend: ``request`` ended; commit with the items file's
        length."""
        backend = self._backend
        if backend is not None:
            backend.finished(request)
            backend.commit(self._items.length(), self.stats)

    def _resume(self, resume: Resume) -> None:
        """Carry on from what the backend holds: the items file cut to what
        was committed, and the requests it hands back queued."""
        length = resume.items_length
        current = self._items.length()
        if length is not None and current is not None and current > length:
            self._items.truncate(length)
            log.info("items file cut to the last committed page", bytes=current - length)
        for domain, request in resume.pending:
            self._feed(domain, request)
        self._start_done = resume.start_done

    def _feed(self, domain: str, request: Request) -> None:
        """Queue a request the backend hands over (already admitted)."""
        if self.settings.robots.obey and not self._robots.is_loaded(split_http_url(request.url)):
            self._politeness.hold(domain)  # until its robots.txt is known, as in schedule()
        self._frontier.push(domain, request)
        self._pending += 1
        self._changed.set()

    def _seed(self) -> None:
        """Run ``start()`` here after all (the backend's seeder died)."""
        if self._stages is not None and self._start_done and self._stop_reason is None:
            self._start_done = False
            self._start_scope = trio.CancelScope()
            self._stages.start_soon(self._start_stage)

    def _export_one(self, item: Any, request: Request, domain: str) -> bool:
        """Write one item; False if it was refused, over the limit or lost."""
        stats = self.stats
        max_items = self.settings.max_items
        if max_items and stats.items >= max_items:
            stats.filtered["over_max_items"] += 1
            if self._debug:
                log.debug("item dropped: over max_items", **request_keys(request.url, domain))
            return False
        try:
            line = self._items.encode(item)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            self._fail(
                request,
                "item_encode_error",
                f"item not JSON-encodable: {exc}",
                domain=domain,
                attempt=None,
            )
            return False
        if self.output_error is not None:
            stats.errors["output_error"] += 1
            return False
        try:
            self._items.write_line(line)
        except OSError as exc:
            # The reader went away (a closed pipe) or the disk is full:
            # nothing more can be delivered, so stop the crawl.
            self.output_error = exc
            stats.errors["output_error"] += 1
            log.error(
                "cannot write items; stopping", **request_keys(request.url, domain), error=str(exc)
            )
            self.request_stop("output_error")
            return False
        stats.item(domain)
        if max_items and stats.items >= max_items:
            self.request_stop("max_items")
        return True

    # -- accounting ----------------------------------------------------------

    def _fail(
        self,
        request: Request,
        kind: str,
        reason: str,
        status: int | None = None,
        *,
        parent: Request | None = None,
        outcome: _Outcome | None = None,
        domain: str | None = None,
        attempt: int | None = 0,
    ) -> None:
        """Count and log a request that finally failed, and write it to the
        errors file. ``outcome``: its last attempt's, if one was made; else
        its ``domain`` and attempts made (None: unknown), if known."""
        if outcome is not None:
            keys = outcome.log_keys()
        else:
            keys = request_keys(request.url, domain, None, attempt)
        self.stats.failed(keys["domain"], kind)
        log.warning("request failed", **keys, kind=kind, reason=reason)
        self._record(request, kind, reason, status, parent)

    def _unfinished(self, request: Request, reason: str) -> None:
        self.stats.unfinished += 1
        # (Else the backend keeps it for a later run, unless it lost the crawl.)
        if self._backend is None or self._stop_reason == "crawl_lost":
            self._record(request, "unfinished", reason, None, None)

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

    def _account_unfinished(self, reason: str) -> None:
        for _, request in self._frontier.drain():
            self._active.pop(id(request), None)
            self._unfinished(request, f"not fetched: crawl ended ({reason})")
        for request in self._retrier.drain():
            self._active.pop(id(request), None)
            self._unfinished(request, f"retry not fetched: crawl ended ({reason})")


class _Link:
    """The engine as its backend sees it (:class:`~crawlmesh._state._backend.EngineLink`)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def feed(self, domain: str, request: Request) -> None:
        self._engine._feed(domain, request)

    def seed(self) -> None:
        self._engine._seed()

    def wake(self) -> None:
        self._engine._changed.set()

    def pause(self, domain: str, seconds: float) -> None:
        engine = self._engine
        engine._politeness.pause(domain, trio.current_time() + seconds)
        engine._changed.set()

    def breaker(self, node: str, domain: str | None, seconds: float) -> None:
        balancer = self._engine.balancer
        if balancer is not None:
            balancer.apply_shared_breaker(node, domain, seconds)

    def stop(self, reason: str) -> None:
        self._engine.request_stop(reason)

    def backlog(self) -> int:
        return self._engine._pending
