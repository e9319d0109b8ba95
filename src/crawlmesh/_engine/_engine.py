"""The engine: wires the stages of a crawl in one nursery.

::

    start() ─┐                      (bounded channels, backpressure)
             ▼
    frontier ── dispatch ──▶ fetch x concurrency ──▶ parse x workers ──▶ export
       ▲   (politeness:          (robots, transport,        (callbacks,          (JSON lines)
       │    per-domain slots      whole-request deadline)    errbacks)
       │    and delays)                                         │
       └──────────────────── new requests (dedupe, filters) ◀───┘

Each stage is its own object (:mod:`._dispatch`, :mod:`._fetch`,
:mod:`._parse`, :mod:`._export_stage`), built here with what it needs and the
:class:`~._ledger.Ledger` they share. A request is *pending* from the moment
the frontier accepts it until its callback (or errback) has finished; the
crawl is over when nothing is pending and ``start()`` is exhausted. Every
request ends exactly one way: a response handed to its callback, a policy
filter counted in stats, or a line in the errors file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Literal

import msgspec
import structlog
import trio

from .._balancer import Balancer, build_transport, mesh_around, reload_nodes, run_mesh_upkeep
from .._exceptions import plain_errors
from .._frontier import DupeFilter, Frontier, MemoryFrontier
from .._hooks import (
    Events,
    Extensions,
    FetchHooks,
    ParseHooks,
    Pipelines,
    SpiderClosed,
    load_objects,
)
from .._observe import CrawlStats, StatsCollector, report_progress
from .._request import Request
from .._resilience import RetryBudgetStatistics
from .._resilience._retrying import Retrier
from .._settings import NodeSpec, Settings
from .._shaping import AimdController, Politeness, Shaper
from .._spider import Spider
from .._spiders import warn_unmatched_rules, warn_unused_rules
from .._state import Backend, MemoryBackend, Resume
from .._transport import Transport
from .._util._log import configure_logging, debug_enabled
from .._util._tally import RateWaits
from ._dispatch import DispatchStage
from ._empty import why_empty
from ._export import Feed, FeedSet, JsonLinesWriter, as_feedset
from ._export_stage import ExportStage
from ._fetch import FetchStage
from ._holds import CircuitHolds
from ._ledger import Ledger
from ._parse import ParseStage
from ._records import Dispatched, Item, Outcome, Page
from ._schedule import Scheduler

__all__ = ["Engine"]

log = structlog.get_logger("crawlmesh.engine")


class Engine:
    """Runs one spider to completion.

    Args:
        spider: the spider instance.
        settings: resolved settings.
        items: where items go: a :class:`~crawlmesh._feeds.FeedSet`, or one
            feed such as a :class:`JsonLinesWriter`.
        errors: where failed requests go (None: only counted and logged).
        transport: a custom fetch transport, the one direct node of a mesh
            (default: the mesh the settings declare).
        frontier: queued requests (default: in memory).
        dupefilter: seen fingerprints, for the default backend (default: in memory).
        backend: where the crawl's state lives (default: a
            :class:`~crawlmesh._state._memory.MemoryBackend` with ``dupefilter``,
            nothing kept beyond this process; a
            :class:`~crawlmesh._state._jobdir.JobDir` to resume from, or a
            :class:`~crawlmesh._state._redis.RedisBackend` shared by many workers);
            its dupe filter replaces ``dupefilter``.
        pipelines: item pipelines, after the settings' and the spider's.
        fetch_hooks: fetch hooks, after the settings' and the spider's.
        parse_hooks: parse hooks, after the settings' and the spider's.
        extensions: extensions, after the settings' and the spider's.

    Raises:
        SettingsError: a pipeline, hook or extension path cannot be loaded.
    """

    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        *,
        items: Feed | FeedSet,
        errors: JsonLinesWriter | None = None,
        transport: Transport | None = None,
        frontier: Frontier | None = None,
        dupefilter: DupeFilter | None = None,
        backend: Backend | None = None,
        pipelines: Sequence[object] = (),
        fetch_hooks: Sequence[object] = (),
        parse_hooks: Sequence[object] = (),
        extensions: Sequence[object] = (),
    ) -> None:
        self.spider = spider
        self.settings = settings
        spider.settings = settings
        self.stats = StatsCollector()
        failures = self.stats.hook_errors
        self.events = Events(failures)
        """The crawl's events: subscribe before :meth:`run`."""
        self.pipelines = Pipelines(
            hook_objects(settings, spider, "pipelines", pipelines),
            dropped=self.stats.items_dropped,
            errors=failures,
            events=self.events,
            fail=self._item_lost,
        )
        self._fetch_hooks = FetchHooks(
            hook_objects(settings, spider, "fetch_hooks", fetch_hooks),
            timeout=settings.hook_timeout,
            max_replacements=settings.hook_max_replacements,
            errors=failures,
        )
        self._parse_hooks = ParseHooks(
            hook_objects(settings, spider, "parse_hooks", parse_hooks), errors=failures
        )
        self._extensions = Extensions(
            hook_objects(settings, spider, "extensions", extensions), failures
        )
        self._items = as_feedset(items)
        self._errors = errors
        # One direct node around a custom transport is a mesh like any other.
        self._transport = (
            build_transport(settings) if transport is None else mesh_around(transport, settings)
        )
        self.balancer: Balancer = self._transport.balancer
        self._transport.hooks = self._fetch_hooks
        # (``is None``, not ``or``: an empty frontier is falsy.)
        self._frontier: Frontier = MemoryFrontier() if frontier is None else frontier
        self.rate_waits = RateWaits()
        """Requests held back by rate limits, by reason (for the metrics)."""
        if backend is None:
            backend = MemoryBackend(dupefilter)
        self._backend: Backend = backend
        self.balancer.rate_waits = self.rate_waits
        self.balancer.share = backend.mesh_share
        self._retrier = Retrier(settings.retry)
        self._ledger = Ledger(
            self.stats,
            self._items,
            errors,
            self._frontier,
            self._retrier,
            self._stopping,
            store=backend,
            journal=backend,
            events=self.events,
        )
        self._build_stages()
        self._nursery: trio.Nursery | None = None
        self._stages: trio.Nursery | None = None
        self._crawl_totals: dict[str, int] = {}

    def _build_stages(self) -> None:
        settings, ledger, backend = self.settings, self._ledger, self._backend
        holds = CircuitHolds(self.balancer, settings, self.stats)
        politeness = Politeness(
            settings.concurrency_per_domain,
            settings.download_delay,
            Shaper(settings.rates) if settings.rates else None,
            aimd=_aimd_factory(settings),
            gate=holds.gate,
            waits=self.rate_waits,
        )
        holds.bind(politeness)
        self._fetch = FetchStage(
            settings,
            ledger,
            transport=self._transport,
            balancer=self.balancer,
            frontier=self._frontier,
            politeness=politeness,
            retrier=self._retrier,
            holds=holds,
            limits=backend,
            rate_waits=self.rate_waits,
            schedule=lambda request, parent: self._scheduler.schedule(request, parent),
            events=self.events,
        )
        self._scheduler = Scheduler(
            settings,
            self.spider,
            ledger,
            frontier=self._frontier,
            politeness=politeness,
            robots=self._fetch.robots,
            store=backend,
            dedupe=backend,
            events=self.events,
        )
        self._politeness = politeness
        self._dispatch = DispatchStage(
            settings,
            self.spider,
            ledger,
            frontier=self._frontier,
            politeness=politeness,
            retrier=self._retrier,
            holds=holds,
            store=backend,
            schedule=self._scheduler.schedule,
            hooks=self._parse_hooks,
        )
        self._parse = ParseStage(
            self.spider,
            settings.parse_workers,
            ledger,
            admission=self._scheduler.admission,
            journal=backend,
            dedupe=backend,
            schedule=self._scheduler.schedule,
            pipelines=self.pipelines,
            hooks=self._parse_hooks,
            events=self.events,
        )
        self._export = ExportStage(self._items, settings.max_items, ledger, self.events)

    # -- public ------------------------------------------------------------

    def request_stop(self, reason: str = "shutdown") -> None:
        """Stop scheduling; in-flight requests get ``shutdown_timeout`` to finish."""
        self._ledger.request_stop(reason)

    def _stopping(self, reason: str) -> None:
        log.info("stopping", reason=reason, in_flight=len(self._fetch.inflight))
        self._dispatch.cancel_start()
        self._ledger.notify()
        if self._nursery is not None:
            self._nursery.start_soon(self._fetch.enforce_deadline)

    @property
    def output_error(self) -> OSError | None:
        """Why the items file could not be written (the crawl stopped), if it could not."""
        return self._export.output_error

    def schedule(self, request: Request, parent: Request | None = None) -> bool:
        """Filter, dedupe and queue one request; True if it was queued.

        While the crawl is stopping, a request that passes the filters is not
        queued but written to the errors file as ``unfinished``.
        """
        return self._scheduler.schedule(request, parent)

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
        return len(self._frontier), len(self._fetch.inflight)

    def use_nodes(self, specs: Sequence[NodeSpec]) -> None:
        """Use ``specs`` as the node mesh; call before :meth:`run`."""
        self.balancer.reset(specs)

    def reload_nodes(self) -> bool:
        """Re-read the node file (on SIGHUP); a bad file keeps the old mesh."""
        return reload_nodes(self.balancer, self.settings)

    def flush_now(self) -> int:
        """Write the items already queued for export, synchronously.

        For an immediate exit (a second Ctrl-C): items still inside running
        callbacks are lost, but none that were produced. Returns how many
        items were written.
        """
        return self._export.flush_now()

    def finish_feeds(self) -> None:
        """Write the feeds' footers (a JSON array's ``]``, XML's
        ``</items>``) for an immediate exit that will not close them; the
        lengths committed exclude them, so a resume still carries on."""
        self._items.finish()

    def abandon_now(self, reason: str) -> int:
        """Account, synchronously, for every request not ended yet, for an
        immediate exit (a second Ctrl-C): queued, parked for a retry, being
        fetched or in a callback, each is written to the errors file as
        ``unfinished`` (with a backend that keeps them for a resume,
        only counted). Returns how many there were."""
        return self._ledger.abandon(reason)

    def unfinished_where(self) -> str:
        """Where requests left unfinished go, for a message."""
        if self._backend.keeps_unfinished:
            return "kept for a resume"
        if self._errors is not None:
            return "written to the errors file"
        return "lost: no errors file (--errors)"

    async def run(self) -> CrawlStats:
        """Crawl until done or stopped; returns the final statistics."""
        if not structlog.is_configured():
            # Library use without configure_logging(): keep stdout for items.
            configure_logging(self.settings.log_level)
        self._fetch.debug = self._export.debug = debug_enabled()
        warn_unused_rules(self.spider)
        self.stats.started = trio.current_time()
        # (A backend's client runs a task group: its errors arrive wrapped.)
        with plain_errors():
            async with trio.open_nursery() as events:
                events.start_soon(self.events.run)
                try:
                    reason = await self._run_open()
                finally:
                    self.events.close()  # (its task runs what is queued, then ends)
        self.stats.retries = self._retrier.retries
        self.stats.retry_budget_refusals = self._retrier.budget_refusals
        self.stats.node_retries = self._retrier.retries_by_node
        snapshot = self.stats.snapshot(reason, self._fetch.robots.fetched, self.balancer)
        if self._crawl_totals:
            snapshot = msgspec.structs.replace(snapshot, crawl_totals=self._crawl_totals)
        elif (empty := why_empty(snapshot, self._scheduler.allowed_domains)) is not None:
            log.warning(empty, spider=self.spider.name)
        return snapshot

    async def _run_open(self) -> str:
        """Open the hooks and the backend, crawl, and close them; returns
        the finish reason."""
        spider = self.spider
        spider.subscribe(self.events)
        self._extensions.subscribe(
            (
                *self.pipelines.objects,
                *self._fetch_hooks.objects,
                *self._parse_hooks.objects,
                *self._extensions.objects,
            ),
            self.events,
        )
        self._scheduler.listen()
        try:
            await self._extensions.open_all(spider, self.pipelines, self.events)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._transport.aclose()
            raise
        reason = "failed"
        try:
            async with AsyncExitStack() as stack:
                connect = self._backend.connect(_Link(self), self.stats)
                try:
                    self._resume(await stack.enter_async_context(connect))
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await self._transport.aclose()
                    raise
                reason = await self._run_stages()
        finally:
            with trio.CancelScope(shield=True):
                await self._extensions.close_all(spider, self.events)
        try:
            await spider.closed(reason)
        except Exception as exc:
            log.error("spider.closed() raised", error=repr(exc), exc_info=exc)
        warn_unmatched_rules(spider)
        self.events.emit(SpiderClosed(spider, reason))
        return reason

    def _item_lost(self, request: Request, kind: str, reason: str, domain: str) -> None:
        """An item a pipeline failed on: written off with its request."""
        self._ledger.fail(request, kind, reason, domain=domain, attempt=None)

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
                outer.start_soon(run_mesh_upkeep, self.balancer, self.settings)
                outer.start_soon(self._backend.run)
                fetch_send, fetch_recv = trio.open_memory_channel[Dispatched](0)
                parse_send, parse_recv = trio.open_memory_channel[Outcome](concurrency)
                item_send, item_recv = trio.open_memory_channel[Item | Page](256)
                self._export.channel = item_recv
                async with trio.open_nursery() as stages:
                    self._stages = stages
                    stages.start_soon(self._export.run, item_recv)
                    stages.start_soon(self._parse.run, parse_recv, item_send)
                    stages.start_soon(self._fetch.run, fetch_recv, parse_send)
                    stages.start_soon(self._dispatch.run, fetch_send)
                    if not self._dispatch.start_done:
                        stages.start_soon(self._dispatch.start)
                self._stages = None
                # Everything has drained: stop the shutdown deadline and progress.
                outer.cancel_scope.cancel()
        finally:
            self._nursery = None
            reason = self._ledger.stop_reason or "finished"
            self._ledger.account_unfinished(reason)
            with trio.CancelScope(shield=True):
                totals = await self._backend.aclose(self.stats, self._items.lengths())
            self._crawl_totals = totals or {}
            await self._transport.aclose()
        return reason

    def _resume(self, resume: Resume) -> None:
        """Carry on from what the backend holds: the items file cut to what
        was committed, and the requests it hands back queued."""
        self._export.cut_to(resume.lengths)
        for domain, request in resume.pending:
            self._scheduler.feed(domain, request)
        self._dispatch.start_done = resume.start_done

    def _seed(self) -> None:
        """Run ``start()`` here after all (the backend's seeder died)."""
        if self._stages is not None and self._dispatch.restart():
            self._stages.start_soon(self._dispatch.start)


HookKey = Literal["pipelines", "fetch_hooks", "parse_hooks", "extensions"]


def hook_objects(
    settings: Settings, spider: Spider, key: HookKey, extra: Sequence[object]
) -> list[object]:
    """One list of pipelines, hooks or extensions: the setting's (import
    paths), then the spider's attribute, then the engine's argument."""
    return [*load_objects(getattr(settings, key), key), *getattr(spider, key), *extra]


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


class _Link:
    """The engine as its backend sees it (:class:`~crawlmesh._state._backend.EngineLink`)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def feed(self, domain: str, request: Request) -> None:
        self._engine._scheduler.feed(domain, request)

    def seed(self) -> None:
        self._engine._seed()

    def wake(self) -> None:
        self._engine._ledger.notify()

    def pause(self, domain: str, seconds: float) -> None:
        engine = self._engine
        engine._politeness.pause(domain, trio.current_time() + seconds)
        engine._ledger.notify()

    def breaker(self, node: str, domain: str | None, seconds: float) -> None:
        self._engine.balancer.apply_shared_breaker(node, domain, seconds)

    def stop(self, reason: str) -> None:
        self._engine.request_stop(reason)

    def backlog(self) -> int:
        return self._engine._ledger.pending
