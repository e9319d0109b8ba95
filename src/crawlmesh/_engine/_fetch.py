"""The fetch stage: ``concurrency`` workers, each taking a dispatched request
through robots.txt, the crawl's shared rate and the transport, and deciding
from what came back whether it is retried or handed to the parse stage.

What each answer says about its domain's load feeds the domain's throttle
(AIMD) and, for a 429 or 503 with Retry-After, pauses the domain (or, under a
per-node rate, the node for that domain).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import trio

from .._balancer import Balancer
from .._exceptions import CircuitOpen, DropRequest, FetchError, RequestError
from .._frontier import Frontier
from .._hooks import Events, HookReplaced, ResponseReceived
from .._observe import StatsCollector
from .._request import Request
from .._resilience._retrying import Retrier
from .._response import Response
from .._settings import Settings, fetch_options
from .._shaping import Politeness, Shaper, parse_retry_after
from .._state import SharedLimits
from .._transport import Transport
from .._util._log import request_keys
from .._util._tally import RateWaits
from .._util._url import split_http_url
from ._holds import CircuitHolds
from ._ledger import Ledger
from ._records import Dispatched, Outcome, Shutdown
from ._robots import RobotsCache

__all__ = ["FetchStage"]

log = structlog.get_logger("crawlmesh.engine")

# A 429 or 503 with Retry-After pauses its domain for as long as it says; both,
# and timeouts, halve the domain's AIMD concurrency.
_PUSHBACK_STATUSES = frozenset({429, 503})


class FetchStage:
    """Fetches dispatched requests (see the module).

    Args:
        settings: resolved settings.
        ledger: the crawl's shared accounting.
        transport: what fetches, through the mesh.
        balancer: the node mesh behind ``transport``.
        frontier: where a request no node could take goes back to.
        politeness: per-domain slots, delays and throttles.
        retrier: decides and parks retries.
        holds: the domains the breakers hold.
        limits: the limits the crawl's workers share.
        rate_waits: requests held back by rate limits, by reason.
        schedule: queues a request a fetch hook put in the place of another
            (and the one it replaces).
        events: the crawl's events (``ResponseReceived``).
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        transport: Transport,
        balancer: Balancer,
        frontier: Frontier,
        politeness: Politeness,
        retrier: Retrier,
        holds: CircuitHolds,
        limits: SharedLimits,
        rate_waits: RateWaits,
        schedule: Callable[[Request, Request | None], bool],
        events: Events,
    ) -> None:
        self._schedule = schedule
        self._events = events
        self._settings = settings
        self._ledger = ledger
        self._stats: StatsCollector = ledger.stats
        self._transport = transport
        self._balancer = balancer
        self._frontier = frontier
        self._politeness = politeness
        self._retrier = retrier
        # (The same dict as the gate's: an answer ends its domain's hold.)
        self._held_since: dict[str, float] = holds.since
        self._limits = limits
        self._rate_waits = rate_waits
        self._options = fetch_options(settings)
        self.robots = RobotsCache(
            transport, self._options, settings.robots.user_agent, self._on_crawl_delay
        )
        # A domain's rate is shared by every worker when the backend is.
        self._shared_rates = Shaper(settings.rates) if limits.shared and settings.rates else None
        self.inflight: set[trio.CancelScope] = set()
        """The fetches under way (what the shutdown deadline cancels)."""
        self.debug = False  # log a line per response (set by the engine's run())

    async def run(
        self,
        fetch_recv: trio.MemoryReceiveChannel[Dispatched],
        parse_send: trio.MemorySendChannel[Outcome],
    ) -> None:
        """Fetch until ``fetch_recv`` closes, with ``concurrency`` workers."""
        async with fetch_recv, parse_send, trio.open_nursery() as nursery:
            for _ in range(self._settings.concurrency):
                nursery.start_soon(self._worker, fetch_recv.clone(), parse_send.clone())

    async def enforce_deadline(self) -> None:
        """Cancel the fetches still under way ``shutdown_timeout`` from now."""
        await trio.sleep(self._settings.shutdown_timeout)
        if self.inflight:
            log.warning("shutdown deadline passed; interrupting", in_flight=len(self.inflight))
        for scope in list(self.inflight):
            scope.cancel()

    def _on_crawl_delay(self, host: str, delay: float) -> None:
        log.info("robots.txt asks for a crawl delay", domain=host, delay=delay)
        self._politeness.set_delay(host, delay)

    async def _worker(
        self,
        fetch_recv: trio.MemoryReceiveChannel[Dispatched],
        parse_send: trio.MemorySendChannel[Outcome],
    ) -> None:
        ledger = self._ledger
        async with fetch_recv, parse_send:
            async for domain, request in fetch_recv:
                started = trio.current_time()
                try:
                    outcome = await self._fetch_one(domain, request)
                finally:
                    self._politeness.release(domain)
                    ledger.changed.set()
                if outcome is None:
                    self._retrier.done(request)
                    ledger.finished(request)
                    ledger.active.pop(id(request), None)
                    ledger.done_one()
                    continue
                if isinstance(outcome.error, CircuitOpen) and ledger.stop_reason is None:
                    # Not an attempt: back to the frontier, where the gate
                    # holds it until a breaker admits its domain.
                    ledger.active.pop(id(request), None)
                    self._frontier.push(domain, request)
                    ledger.dispatched -= 1  # not an attempt: max_pages counts fetches
                    continue
                latency = trio.current_time() - started
                if outcome.response is not None and self._events.wants(ResponseReceived):
                    self._events.emit(ResponseReceived(request, outcome.response))
                retry_after = self._learn(domain, outcome, latency)
                if self.debug and outcome.response is not None:
                    log.debug(
                        "fetched",
                        **outcome.log_keys(),
                        status=outcome.response.status,
                        ms=round(latency * 1000, 1),
                    )
                if ledger.stop_reason is None and self._retrier.consider(
                    domain, request, outcome.response, outcome.error, retry_after
                ):
                    self._stats.retried(domain)
                    ledger.changed.set()  # the dispatcher must wake for it
                    continue
                self._retrier.done(request)
                await parse_send.send(outcome)
                # Not kept until the next fetch ends: the parse worker frees
                # the page (its parsed tree too) once done with it, while the
                # tree is still in the CPU's caches.
                outcome = None

    async def _fetch_one(self, domain: str, request: Request) -> Outcome | None:
        settings = self._settings
        attempt = 1
        with trio.CancelScope() as scope:
            self.inflight.add(scope)
            try:
                if settings.robots.obey:
                    parts = split_http_url(request.url)
                    verdict = await self.robots.check(request.url, parts)
                    self._politeness.unhold(domain)
                    self._ledger.notify()  # the domain may take more requests now
                    if not verdict.allowed:
                        if verdict.reason == "robots":
                            self._ledger.filtered(request, "robots")
                            if self.debug:
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
                        return Outcome(request, None, error, domain, 0)
                if self._shared_rates is not None:
                    shared = self._shared_rates.rate_of(domain)
                    if shared is not None:
                        waited = await self._limits.gate(domain, *shared)  # the crawl's rate
                        if waited > 0:
                            self._rate_waits.add("shared", waited)
                options = self._retrier.options_for(request, self._options)
                attempt = options.attempt
                # Through the mesh, each attempt on a node has its own deadline
                # (kind and domain overrides included).
                response = await self._transport.fetch(request, options)
                return Outcome(request, response, None, domain, attempt)
            except DropRequest:
                self._ledger.filtered(request, "dropped_by_hook")
                return None
            except HookReplaced as replaced:
                # The original ends as a filter; its replacement is a new
                # request, past the duplicate filter (a hook asked for it).
                self._ledger.filtered(request, "replaced_by_hook")
                self._schedule(replaced.request.replace(dont_filter=True), request)
                return None
            except FetchError as exc:
                return Outcome(request, None, exc.with_request(request), domain, attempt)
            except RequestError as exc:
                # A URL the transport refuses outright: a failure of this request only.
                failure = FetchError(str(exc), request=request, kind=exc.kind)
                return Outcome(request, None, failure, domain, attempt)
            finally:
                self.inflight.discard(scope)
        # Only reached when the shutdown deadline cancelled the fetch.
        shutdown = Shutdown("interrupted by shutdown", request=request)
        return Outcome(request, None, shutdown, domain, attempt)

    def _learn(self, domain: str, outcome: Outcome, latency: float) -> float | None:
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
            pushback = error.is_timeout and not error.node_fault
            success = False
        politeness = self._politeness
        before = politeness.limit(domain)
        politeness.observe(domain, latency if success else None, pushback=pushback)
        if politeness.limit(domain) < before:
            self._stats.throttle_decreases += 1
            log.info(
                "lowering a domain's concurrency",
                **outcome.log_keys(),
                limit=politeness.limit(domain),
            )
        return retry_after

    def _pause_for(self, domain: str, response: Response, outcome: Outcome) -> float | None:
        """Pause a domain that pushed back: for as long as its Retry-After
        says, else for ``throttle.pushback_pause``. Returns the Retry-After."""
        value = response.headers.get("retry-after")
        delay = None
        if value is not None:
            delay = parse_retry_after(value, time.time(), max_delay=self._settings.retry_after_max)
            if delay is None:
                log.info("ignoring an unreadable Retry-After", **outcome.log_keys(), value=value)
        if delay is None:
            throttle = self._settings.throttle
            if throttle.enabled and throttle.pushback_pause:
                # With no Retry-After to go by, a short pause: fewer requests
                # in flight do not slow a site that refuses them at once.
                self._politeness.pause(domain, trio.current_time() + throttle.pushback_pause)
            return None
        until = trio.current_time() + delay
        node = response.node
        paused = node and self._balancer.pause_node(node, domain, until)
        if not paused:  # under a per-node rate, only the (node, domain) pair pauses
            self._politeness.pause(domain, until)
            self._limits.pause(domain, delay)  # every worker pauses
        self._stats.paused(domain)
        log.info(
            "pausing a domain as Retry-After asks",
            **outcome.log_keys(),
            seconds=round(delay, 3),
            status=response.status,
        )
        return delay
