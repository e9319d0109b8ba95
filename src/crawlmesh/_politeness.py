"""Per-domain politeness: concurrency slots and the delay between requests.

The dispatcher asks :meth:`Politeness.ready` while scanning the frontier and
calls :meth:`acquire`/:meth:`release` around each fetch. Times come from
``trio.current_time()`` so tests run in virtual time.
"""

from __future__ import annotations

import math

import trio

__all__ = ["Politeness"]


class _Slot:
    __slots__ = ("delay", "held", "in_flight", "limit", "next_time")

    def __init__(self, limit: int, delay: float) -> None:
        self.held = False
        self.in_flight = 0
        self.limit = limit
        self.delay = delay
        self.next_time = -math.inf


class Politeness:
    """Concurrency and spacing of requests to each domain.

    Args:
        concurrency: requests in flight to one domain.
        delay: seconds between the starts of two requests to one domain.
    """

    __slots__ = ("_concurrency", "_delay", "_slots", "wake_at")

    def __init__(self, concurrency: int, delay: float = 0.0) -> None:
        self._concurrency = concurrency
        self._delay = delay
        self._slots: dict[str, _Slot] = {}
        # Earliest time a domain found not ready only for its delay becomes
        # ready; the dispatcher sleeps until then. Reset before each scan.
        self.wake_at = math.inf

    def _slot(self, domain: str) -> _Slot:
        slot = self._slots.get(domain)
        if slot is None:
            slot = self._slots[domain] = _Slot(self._concurrency, self._delay)
        return slot

    def set_delay(self, domain: str, delay: float) -> None:
        """Space requests to ``domain`` by at least ``delay`` seconds (e.g.
        robots.txt Crawl-delay); a delay also limits the domain to one
        request in flight, as Crawl-delay intends."""
        slot = self._slot(domain)
        slot.delay = max(self._delay, delay)
        if slot.delay > 0:
            slot.limit = 1
            # The request that learnt the delay (from robots.txt) is about to
            # start: the next one waits a full delay after it.
            slot.next_time = max(slot.next_time, trio.current_time() + slot.delay)

    def set_limit(self, domain: str, limit: int) -> None:
        """Change how many requests may be in flight to ``domain``."""
        self._slot(domain).limit = limit

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
            if slot.delay <= 0:
                slot.limit = self._concurrency

    def delay_of(self, domain: str) -> float:
        return self._slot(domain).delay

    def ready(self, domain: str) -> bool:
        """May a request to ``domain`` start now?"""
        slot = self._slots.get(domain)
        if slot is None:
            return True
        if slot.in_flight >= slot.limit:
            return False
        if slot.next_time > trio.current_time():
            self.wake_at = min(self.wake_at, slot.next_time)
            return False
        return True

    def acquire(self, domain: str) -> None:
        slot = self._slot(domain)
        slot.in_flight += 1
        if slot.delay:
            slot.next_time = trio.current_time() + slot.delay

    def release(self, domain: str) -> None:
        slot = self._slots[domain]
        slot.in_flight -= 1
        if (
            slot.in_flight == 0
            and slot.next_time <= trio.current_time()
            and slot.limit == self._concurrency
        ):
            # Forget idle domains so memory does not grow with every host seen.
            del self._slots[domain]
