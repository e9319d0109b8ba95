"""Adaptive per-domain concurrency: additive increase, multiplicative decrease.

TCP's congestion control applied to a web site: every success with a low
latency is evidence there is room for one more request in flight, every
pushback (429, 503, a timeout) is a loss. The limit grows by one per window
of successes (one success per slot, about one round trip) and halves on a
loss, at most once per round trip, since one overload event shows up as
several failed requests.

Unlike Scrapy's AutoThrottle, which can lower its delay while a site answers
429, the limit never grows within ``quiet`` seconds of a pushback, and never
on a success slower than the target latency.
"""

from __future__ import annotations

import math

import trio

__all__ = ["AimdController"]


class AimdController:
    """The concurrency limit of one domain (or one node-domain pair).

    Times are passed in, or read from ``trio.current_time()``, so the
    controller runs in virtual time under ``trio.testing.MockClock``.

    Args:
        initial: the starting limit.
        minimum: the limit never goes below this (>= 1).
        maximum: nor above this.
        target_latency: seconds; a success slower than this does not count
            towards an increase. None: latency does not matter.
        backoff: the factor applied on a pushback, in (0, 1).
        cooldown: seconds after a decrease during which further pushbacks do
            not decrease again (the smoothed latency is used if longer).
        quiet: seconds after any pushback during which the limit never grows.

    Raises:
        ValueError: limits out of order, or parameters out of range.
    """

    __slots__ = (
        "_backoff",
        "_cooldown",
        "_last_decrease",
        "_last_pushback",
        "_latency",
        "_limit",
        "_maximum",
        "_minimum",
        "_quiet",
        "_successes",
        "_target",
    )

    # Weight of a new sample in the smoothed latency (as TCP's SRTT: 1/8).
    _ALPHA = 0.125

    def __init__(
        self,
        initial: int,
        *,
        maximum: int,
        minimum: int = 1,
        target_latency: float | None = None,
        backoff: float = 0.5,
        cooldown: float = 1.0,
        quiet: float = 10.0,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(
                f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}"
            )
        if target_latency is not None and not target_latency > 0:
            raise ValueError(f"target_latency must be > 0 seconds, not {target_latency!r}")
        if not 0 < backoff < 1:
            raise ValueError(f"backoff must be between 0 and 1, not {backoff!r}")
        if cooldown < 0 or quiet < 0:
            raise ValueError("cooldown and quiet must be >= 0 seconds")
        self._limit = initial
        self._minimum = minimum
        self._maximum = maximum
        self._target = target_latency
        self._backoff = backoff
        self._cooldown = cooldown
        self._quiet = quiet
        self._successes = 0
        self._latency: float | None = None
        self._last_pushback = -math.inf
        self._last_decrease = -math.inf

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        return self._limit

    @property
    def latency(self) -> float | None:
        """The smoothed latency of successes, None before the first."""
        return self._latency

    def on_success(self, latency: float, now: float | None = None) -> bool:
        """Record a successful response.

        Args:
            latency: seconds from sending the request to its response.
            now: the current time (default ``trio.current_time()``).

        Returns:
            True if the limit was raised.
        """
        if now is None:
            now = trio.current_time()
        smoothed = self._latency
        if smoothed is None:
            self._latency = latency
        else:
            self._latency = smoothed + self._ALPHA * (latency - smoothed)
        if now - self._last_pushback < self._quiet or (
            self._target is not None and latency > self._target
        ):
            # Growth needs a whole window of fast successes with no pushback.
            self._successes = 0
            return False
        self._successes += 1
        if self._successes < self._limit or self._limit >= self._maximum:
            return False
        self._successes = 0
        self._limit += 1
        return True

    def on_pushback(self, now: float | None = None) -> bool:
        """Record a pushback: 429, 503 or a timeout.

        Args:
            now: the current time (default ``trio.current_time()``).

        Returns:
            True if the limit was lowered.
        """
        if now is None:
            now = trio.current_time()
        self._last_pushback = max(self._last_pushback, now)
        self._successes = 0
        if now - self._last_decrease < max(self._cooldown, self._latency or 0.0):
            return False
        # Rounding down guarantees progress even with a backoff close to 1;
        # the epsilon keeps 10 x 0.7 at 7, not 6.
        lowered = max(self._minimum, math.floor(self._limit * self._backoff + 1e-9))
        if lowered == self._limit:
            return False  # already at the floor: no decrease, so no cool-down starts
        self._last_decrease = now
        self._limit = lowered
        return True
