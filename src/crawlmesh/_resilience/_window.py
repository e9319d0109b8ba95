"""Two counters summed over a sliding time window, kept in fixed buckets.

The circuit breaker counts requests and failures, the retry budget counts
requests and retries; both want "how many in the last ``window`` seconds"
in O(1) time and memory, whatever the traffic. Keeping a timestamp per
event (a deque) would cost memory in proportion to the request rate, so
time is cut into ``buckets`` slots of ``window / buckets`` seconds each,
and a slot is emptied when the window slides past it.

The price is granularity: an event stops counting between
``window - window / buckets`` and ``window`` seconds after it happened,
depending on where in its slot it fell.
"""

from __future__ import annotations

import math

import trio

__all__ = ["BUCKETS", "SlidingCounts", "resolve_now"]

BUCKETS = 10
"""Slots per window: the window's edge is exact to a tenth of its length."""

# Before the first event every slot is stale: a head this far back makes the
# first advance clear them all.
_NEVER = -(2**62)


def resolve_now(now: float | None) -> float:
    """``now`` if given, else ``trio.current_time()``: virtual time in tests."""
    return trio.current_time() if now is None else now


class SlidingCounts:
    """``requests`` and ``flagged`` events within a sliding time window.

    What is flagged is the owner's business (failures for a breaker,
    retries for a budget). Times only move forward: an event reported with
    an earlier time than one already seen is counted in the newest slot.

    Args:
        window: the window's length in seconds; must be positive.
        buckets: slots per window.
    """

    __slots__ = ("_flagged", "_head", "_requests", "_width", "flagged", "requests")

    def __init__(self, window: float, buckets: int = BUCKETS) -> None:
        if not window > 0 or buckets < 1:
            raise ValueError(f"need window > 0 and buckets >= 1, got {window!r}, {buckets!r}")
        self._width = window / buckets
        self._requests = [0] * buckets
        self._flagged = [0] * buckets
        self._head = _NEVER
        self.requests = 0
        """Requests in the window (as of the last :meth:`advance`)."""
        self.flagged = 0
        """Flagged events in the window (as of the last :meth:`advance`)."""

    def advance(self, now: float) -> None:
        """Slide the window to ``now``, forgetting the slots it left behind."""
        index = math.floor(now / self._width)
        head = self._head
        if index <= head:
            return
        n = len(self._requests)
        if index - head >= n:
            self._clear()
        else:
            # At most n - 1 slots to empty, whatever the gap: O(buckets).
            for i in range(head + 1, index + 1):
                slot = i % n
                self.requests -= self._requests[slot]
                self.flagged -= self._flagged[slot]
                self._requests[slot] = 0
                self._flagged[slot] = 0
        self._head = index

    def add(self, now: float, requests: int = 0, flagged: int = 0) -> None:
        """Count events at ``now`` (after sliding the window there)."""
        self.advance(now)
        slot = self._head % len(self._requests)
        self._requests[slot] += requests
        self._flagged[slot] += flagged
        self.requests += requests
        self.flagged += flagged

    def reset(self) -> None:
        """Forget every event (the time reached is kept)."""
        head = self._head
        self._clear()
        self._head = head

    def _clear(self) -> None:
        n = len(self._requests)
        self._requests = [0] * n
        self._flagged = [0] * n
        self.requests = 0
        self.flagged = 0
