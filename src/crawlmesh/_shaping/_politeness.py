"""Per-domain politeness: concurrency slots, delays, rates and pauses.

The dispatcher asks :meth:`Politeness.ready` while scanning the frontier and
calls :meth:`acquire`/:meth:`release` around each fetch. A domain that is not
ready is skipped, never waited on, so one domain's queue never blocks another
(no head-of-line blocking); :attr:`Politeness.wake_at` tells the dispatcher
when the first time-blocked domain becomes ready. Times come from
``trio.current_time()`` so tests run in virtual time.

A domain's concurrency is the least of the crawl's ``concurrency_per_domain``,
its rate rule's ``concurrency``, one while robots.txt is unknown or a
Crawl-delay applies, and its AIMD limit (:meth:`Politeness.observe`), which
halves on pushback and grows back one slot per window of fast successes.
A ``gate`` (the balancer's circuit breakers) may hold a domain too.

Waits for time are counted in a :class:`~crawlmesh._util._tally.RateWaits`: a
domain's wait starts when a scan first finds it held back by its delay, a
pause or its rate (not by its concurrency), and ends when the hold ends;
it is counted when the domain's next request starts. A busy dispatcher
(every fetch slot taken) does not lengthen it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from .._util._tally import RateWaits
from ._aimd import AimdController
from ._shaper import Shaper

__all__ = ["Politeness"]


class _Slot:
    __slots__ = (
        "custom",
        "default_limit",
        "delay",
        "held",
        "in_flight",
        "limit",
        "next_time",
        "paused_until",
    )

    def __init__(self, limit: int, delay: float) -> None:
        self.custom = False  # set_delay: remembered while idle
        self.held = False
        self.in_flight = 0
        self.default_limit = limit
        self.limit = limit
        self.delay = delay
        self.next_time = -math.inf
        self.paused_until = -math.inf  # tells a pause from a delay


class _Wait:
    __slots__ = ("reason", "since", "until")

    def __init__(self, since: float, until: float, reason: str) -> None:
        self.since = since
        self.until = until  # as last seen: a pause may be extended
        self.reason = reason  # the first reason found


# AIMD controllers kept for domains seen; the oldest are forgotten beyond this.
_MAX_CONTROLLERS = 100_000

AimdFactory = Callable[[], AimdController]
Gate = Callable[[str], float]
"""Given a domain, the time before which no request to it may start (at most
now when it may start now)."""


class Politeness:
    """Concurrency, spacing and rate of requests to each domain.

    Args:
        concurrency: requests in flight to one domain (a rate rule's
            ``concurrency`` may lower it for its domains).
        delay: seconds between the starts of two requests to one domain.
        shaper: per-domain rate limits, if any are configured.
        aimd: makes each domain's AIMD controller (None: no adaptation).
        gate: holds domains for reasons of its own (circuit breakers).
        waits: where waits for time are counted (see the module's docstring).
    """

    __slots__ = (
        "_aimd",
        "_concurrency",
        "_controllers",
        "_delay",
        "_gate",
        "_shaper",
        "_slots",
        "_waiting",
        "waits",
        "wake_at",
    )

    def __init__(
        self,
        concurrency: int,
        delay: float = 0.0,
        shaper: Shaper | None = None,
        *,
        aimd: AimdFactory | None = None,
        gate: Gate | None = None,
        waits: RateWaits | None = None,
    ) -> None:
        self._concurrency = concurrency
        self._delay = delay
        self._shaper = shaper
        self._aimd = aimd
        self._gate = gate
        self._controllers: dict[str, AimdController] = {}
        self._slots: dict[str, _Slot] = {}
        self.waits = RateWaits() if waits is None else waits
        # Domains held back for time.
        self._waiting: dict[str, _Wait] = {}
        # Earliest time a domain found not ready only for time becomes ready;
        # the dispatcher sleeps until then. Reset before each scan.
        self.wake_at = math.inf

    def _slot(self, domain: str) -> _Slot:
        slot = self._slots.get(domain)
        if slot is None:
            limit = self._concurrency
            if self._shaper is not None:
                limit = min(limit, self._shaper.concurrency(domain) or limit)
            slot = self._slots[domain] = _Slot(limit, self._delay)
            self._apply_aimd(domain, slot)
        return slot

    def _apply_aimd(self, domain: str, slot: _Slot) -> None:
        controller = self._controllers.get(domain)
        if controller is not None and not slot.held:
            slot.limit = min(slot.default_limit, controller.limit)

    def limit(self, domain: str) -> int:
        """Requests that may be in flight to ``domain`` now."""
        slot = self._slots.get(domain)
        if slot is not None:
            return slot.limit
        controller = self._controllers.get(domain)
        limit = self._concurrency
        if self._shaper is not None:
            limit = min(limit, self._shaper.concurrency(domain) or limit)
        return min(limit, controller.limit) if controller is not None else limit

    def observe(self, domain: str, latency: float | None, *, pushback: bool) -> None:
        """Feed a fetch's outcome to the domain's AIMD controller.

        Args:
            domain: where the request went.
            latency: seconds it took, for a success (None: not a success).
            pushback: a 429, a 503 or a timeout: the domain is overloaded.
        """
        if self._aimd is None or (latency is None and not pushback):
            return
        controllers = self._controllers
        controller = controllers.get(domain)
        if controller is None:
            if len(controllers) >= _MAX_CONTROLLERS:
                del controllers[next(iter(controllers))]
            controller = controllers[domain] = self._aimd()
        if pushback:
            changed = controller.on_pushback()
        else:
            assert latency is not None
            changed = controller.on_success(latency)
        if changed:
            slot = self._slots.get(domain)
            if slot is not None:
                self._apply_aimd(domain, slot)

    def set_delay(self, domain: str, delay: float) -> None:
        """Space requests to ``domain`` by at least ``delay`` seconds (e.g.
        robots.txt Crawl-delay); a delay also limits the domain to one
        request in flight, as Crawl-delay intends."""
        slot = self._slot(domain)
        slot.custom = True
        slot.delay = max(self._delay, delay)
        if slot.delay > 0:
            slot.limit = slot.default_limit = 1
            # The request that learnt the delay (from robots.txt) is about to
            # start: the next one waits a full delay after it.
            slot.next_time = max(slot.next_time, trio.current_time() + slot.delay)

    def hold(self, domain: str) -> None:
        """Allow one request at a time (until :meth:`unhold`), e.g. while
        robots.txt and its Crawl-delay are not known yet."""
        slot = self._slot(domain)
        slot.limit = 1
        slot.held = True

    def unhold(self, domain: str) -> None:
        slot = self._slots.get(domain)
        if slot is not None and slot.held:
            slot.held = False
            slot.limit = slot.default_limit
            self._apply_aimd(domain, slot)

    def pause(self, domain: str, until: float) -> None:
        """Start no request to ``domain`` before ``until`` (a Retry-After),
        then resume at its rate with no burst."""
        slot = self._slot(domain)
        slot.next_time = max(slot.next_time, until)
        slot.paused_until = until
        if self._shaper is not None:
            self._shaper.pause(domain, until)

    def ready(self, domain: str) -> bool:
        """May a request to ``domain`` start now?"""
        slot = self._slots.get(domain)
        now = -math.inf
        if slot is not None:
            if slot.in_flight >= slot.limit:
                return False
            now = trio.current_time()
            if slot.next_time > now:
                self.wake_at = min(self.wake_at, slot.next_time)
                paused = slot.paused_until >= slot.next_time
                self._held(domain, now, slot.next_time, "pause" if paused else "delay")
                return False
        if self._shaper is not None:
            if now == -math.inf:
                now = trio.current_time()
            wait = self._shaper.wait(domain, now)
            if wait > 0:
                self.wake_at = min(self.wake_at, now + wait)
                self._held(domain, now, now + wait, "rate")
                return False
        if self._gate is not None:
            until = self._gate(domain)
            # (The time now, after the gate: a gate that answers "now" with
            # its own clock reading must not look like the future, or a
            # domain with a slot would never be ready on a real clock.)
            if until != -math.inf and until > trio.current_time():
                self.wake_at = min(self.wake_at, until)
                return False
        return True

    def note_wait(self, domain: str, until: float, reason: str) -> None:
        """Count ``domain`` as held back until ``until`` for ``reason`` (one
        of :data:`~crawlmesh._util._tally.RATE_WAIT_REASONS`), as :meth:`ready`
        does for its own holds: for a gate's (per-node rates)."""
        self._held(domain, trio.current_time(), until, reason)

    def _held(self, domain: str, now: float, until: float, reason: str) -> None:
        wait = self._waiting.get(domain)
        if wait is not None:
            wait.until = until
            return
        if len(self._waiting) >= _MAX_CONTROLLERS:
            self._waiting.clear()  # (domains whose requests were written off)
        self._waiting[domain] = _Wait(now, until, reason)

    def acquire(self, domain: str) -> None:
        if self._waiting:
            wait = self._waiting.pop(domain, None)
            if wait is not None:
                end = min(wait.until, trio.current_time())
                self.waits.add(wait.reason, max(0.0, end - wait.since))
        slot = self._slot(domain)
        slot.in_flight += 1
        if slot.delay or self._shaper is not None:
            now = trio.current_time()
            if slot.delay:
                slot.next_time = now + slot.delay
            if self._shaper is not None:
                self._shaper.reserve(domain, now)

    def release(self, domain: str) -> None:
        slot = self._slots[domain]
        slot.in_flight -= 1
        if (
            slot.in_flight == 0
            and not (slot.held or slot.custom)
            and slot.next_time <= trio.current_time()
        ):
            # Forget idle domains so memory does not grow with every host seen
            # (a domain with its own limit or delay keeps its slot; rate rules
            # are looked up again when it comes back).
            del self._slots[domain]
