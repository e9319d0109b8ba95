"""Retries: which failures to retry, how long to wait, and how many in all.

* :meth:`RetryPolicy.should_retry` decides one failure: the attempt limit,
  the method's idempotency, and whether the status or error kind is worth
  another try.
* :meth:`RetryPolicy.backoff` picks the wait: exponential backoff with full
  jitter (AWS's "Exponential Backoff and Jitter"), so clients that failed
  together do not retry together; a longer Retry-After wins.
* :class:`RetryBudget` caps retries at a share of requests over a sliding
  window, as Envoy's and Finagle's retry budgets do. Per-request limits
  alone let a dead target receive ``max_attempts`` times its load; with a
  budget it receives at most ``1 + budget_ratio`` times, plus a small
  floor so a crawl with little traffic can still retry at all.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Annotated

import msgspec

from ._window import SlidingCounts, resolve_now

__all__ = ["IDEMPOTENT_METHODS", "RetryBudget", "RetryBudgetStatistics", "RetryPolicy"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods whose repetition has the effect of one request (RFC 9110, 9.2.2)."""

# 2 ** 64 times any sane backoff_base exceeds any sane backoff_max; the bound
# keeps 2.0 ** n from overflowing on absurd attempt numbers.
_MAX_EXPONENT = 64


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When and how to retry a failed request (defaults in code)."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Attempts per request, the first included: 1 disables retries."""
    backoff_base: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    """Seconds: the first retry waits up to this, each further one up to
    twice as long as the one before."""
    backoff_max: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Cap in seconds on the backoff (not on a Retry-After the target sent)."""
    retry_statuses: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
    """Response statuses worth another attempt."""
    retry_kinds: frozenset[str] = frozenset(
        {
            "connect_error",
            "connect_timeout",
            "read_timeout",
            "connection_error",
            "total_timeout",
            "banned",
        }
    )
    """``FetchError.kind`` values worth another attempt ("banned": a block
    page, retried through another node)."""
    retry_non_idempotent: bool = False
    """Retry POST, PATCH and other methods a repeat may apply twice."""
    budget_ratio: Annotated[float, msgspec.Meta(ge=0)] = 0.2
    """Retries allowed per request within ``budget_window`` (0.2: one
    retry per five requests, so a dead target gets at most 1.2 times the
    load of first attempts)."""
    budget_window: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds over which the budget counts requests and retries."""
    budget_min_retries_per_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """A floor of retries per second allowed whatever the ratio, as
    Finagle's ``minRetriesPerSec``: without it a crawl sending one request
    a minute could never retry."""
    node_pushback_timeout: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    """Seconds in a row a request may be held while every node pushes it
    back (a ``crawlmesh node``'s own 429/503 with Retry-After). Such holds
    use up no attempt and no budget: the target never saw the request.
    Past this the request fails with the node's error kind
    (``node_rate_limited``, ``node_overloaded``, ``node_draining``)."""

    def should_retry(
        self,
        method: str,
        attempt: int,
        status: int | None = None,
        kind: str | None = None,
    ) -> bool:
        """Whether a failed attempt deserves another (budget aside).

        Args:
            method: the request's HTTP method (any case).
            attempt: attempts made so far, the failed one included (1 after
                the first).
            status: the response's status, if one came back.
            kind: the ``FetchError.kind``, if the attempt raised.

        Raises:
            ValueError: ``attempt`` is below 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        if attempt >= self.max_attempts:
            return False
        if not self.retry_non_idempotent and method.upper() not in IDEMPOTENT_METHODS:
            return False
        return (status is not None and status in self.retry_statuses) or (
            kind is not None and kind in self.retry_kinds
        )

    def backoff(
        self,
        attempt: int,
        rng: random.Random | None = None,
        retry_after: float | None = None,
    ) -> float:
        """Seconds to wait before the next attempt.

        Full jitter: uniform in ``[0, min(backoff_max, backoff_base *
        2 ** (attempt - 1))]``, so the first retry waits up to
        ``backoff_base``. A ``retry_after`` (seconds the target asked for)
        that is longer wins, even past ``backoff_max``: the target said so,
        and the caller decides whether a request may wait that long.

        Args:
            attempt: attempts made so far, as for :meth:`should_retry`.
            rng: the random source (the ``random`` module's if None); pass
                a seeded one for reproducible runs.
            retry_after: the response's Retry-After, already in seconds.

        Raises:
            ValueError: ``attempt`` is below 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        delay = (rng or random).uniform(0.0, ceiling)
        # A NaN or negative retry_after compares False: ignored.
        if retry_after is not None and retry_after > delay:
            return retry_after
        return delay

    def new_budget(self) -> RetryBudget:
        """A :class:`RetryBudget` with this policy's ``budget_*`` settings."""
        return RetryBudget(self.budget_ratio, self.budget_window, self.budget_min_retries_per_s)


@dataclass(frozen=True, slots=True)
class RetryBudgetStatistics:
    """A snapshot of a :class:`RetryBudget`."""

    requests: int
    """First attempts in the window."""
    retries: int
    """Retries spent in the window."""
    available: int
    """Retries that could be spent now."""
    spent: int
    """Retries spent since the budget was made."""
    refused: int
    """Retries refused since the budget was made."""


class RetryBudget:
    """Retries as a share of requests over a sliding window.

    A retry may be spent while, counting it, the window's retries stay
    within ``ratio * requests + min_retries_per_s * window``. From a fresh
    budget, if ``N`` requests are made and the retries spent span ``D``
    seconds, at most ``ratio * N + min_retries_per_s * window * K`` are
    spent, where ``K = 1 + D / (0.9 * window)`` bounds the disjoint
    windows that fit (0.9: a window's edge moves in tenths). The floor is
    a rate: over a long outage it adds about ``min_retries_per_s * D``.

    Report only first attempts with :meth:`record_request`: counting
    retries as requests would let retries pay for more retries.

    Args:
        ratio: retries allowed per request.
        window: seconds over which both are counted (in tenths).
        min_retries_per_s: retries per second allowed whatever the ratio.
    """

    __slots__ = ("_counts", "_floor", "_ratio", "_refused", "_spent")

    def __init__(
        self, ratio: float = 0.2, window: float = 10.0, min_retries_per_s: float = 1.0
    ) -> None:
        if ratio < 0 or min_retries_per_s < 0:
            raise ValueError("ratio and min_retries_per_s must not be negative")
        self._ratio = ratio
        self._floor = min_retries_per_s * window
        self._counts = SlidingCounts(window)  # requests, flagged = retries
        self._spent = 0
        self._refused = 0

    def record_request(self, now: float | None = None) -> None:
        """Count a request's first attempt (never a retry)."""
        self._counts.add(resolve_now(now), requests=1)

    def try_spend(self, now: float | None = None) -> bool:
        """Take one retry from the budget; False (nothing taken) if none is left."""
        now = resolve_now(now)
        if self.available(now) < 1:
            self._refused += 1
            return False
        self._counts.add(now, flagged=1)
        self._spent += 1
        return True

    def available(self, now: float | None = None) -> int:
        """Retries that could be spent now."""
        counts = self._counts
        counts.advance(resolve_now(now))
        allowance = self._ratio * counts.requests + self._floor
        # Whole retries: a fraction of one cannot be spent.
        return max(0, math.floor(allowance) - counts.flagged)

    def statistics(self, now: float | None = None) -> RetryBudgetStatistics:
        """Counters at ``now``."""
        available = self.available(now)
        return RetryBudgetStatistics(
            requests=self._counts.requests,
            retries=self._counts.flagged,
            available=available,
            spent=self._spent,
            refused=self._refused,
        )
