"""GCRA: per-key rate limits with bursts, one float of state per key.

The Generic Cell Rate Algorithm keeps, for each key, a *theoretical arrival
time* (TAT): when the key's bucket would be empty if every admitted request
had been spaced exactly ``1/rate`` apart. With emission interval ``T = 1/rate``
and burst tolerance ``tau = burst * T``, a request arriving at ``now`` may start
at ``max(now, TAT - tau)``, and admitting it moves ``TAT`` to
``max(TAT, now) + T``.

Semantics, compared with NGINX's ``limit_req zone=... rate=R burst=B``:

- Our ``burst=B`` is NGINX's ``burst=B nodelay``: from idle, ``B + 1`` requests
  start at once (NGINX refuses only when the excess exceeds ``B``, and the
  first request carries no excess), then one every ``T``. The burst allowance
  refills at ``rate``.
- Unlike NGINX, nothing is ever refused: a request beyond the burst is given
  the wait until its slot, and the slot is committed, so callers queue in the
  order they asked. NGINX's ``burst=B`` *without* ``nodelay`` is our
  ``burst=0`` (requests spaced ``T`` apart); ``burst=B delay=D`` is our
  ``burst=D``. The queue bound NGINX enforces with ``B`` is the engine's job.
- Over any window of ``W`` seconds, at most ``rate * W + burst + 1`` requests
  start; while a key is backlogged at least ``rate * W - 1`` do.

This replaces fixed-window counters (a key and an ``INCR`` per minute), which
admit twice the limit across a window boundary and refuse instead of queueing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["GcraLimiter", "parse_rate"]

K = TypeVar("K", bound=Hashable)

# Seconds: waits below this are float noise, reported as 0 so that a burst is
# exactly ``burst + 1`` requests. trio's clock carries a random offset of up
# to 2e5 s (and CLOCK_MONOTONIC grows with uptime), where one ulp is
# 1e-11..1e-9 s. Capped at a thousandth of an interval so no real wait is lost.
_MAX_RESOLUTION = 1e-6

# The key count below which the limiter never sweeps stale keys.
_MIN_SWEEP = 1024


class GcraLimiter(Generic[K]):
    """A rate limit with bursts, applied separately to each key (a domain, a
    ``(node, domain)`` pair, ...).

    Memory is proportional to the *active* keys: a key whose TAT has passed is
    indistinguishable from one never seen, so it is forgotten in a sweep that
    runs when the table has doubled since the last one (O(1) amortised). Keys
    with a TAT in the future are never dropped: forgetting one would hand its
    domain a fresh burst.

    Args:
        rate: requests per second, > 0 (see :func:`parse_rate`).
        burst: requests allowed beyond the rate, at once, after an idle spell.

    Raises:
        ValueError: ``rate`` not positive and finite, or ``burst`` negative.
    """

    __slots__ = ("_burst", "_rate", "_resolution", "_sweep_at", "_tats")

    def __init__(self, rate: float, burst: int = 0) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
        if burst < 0 or int(burst) != burst:
            raise ValueError(f"burst must be a whole number >= 0, not {burst!r}")
        self._rate = float(rate)
        self._burst = int(burst)
        # In units of the emission interval, like every time below.
        self._resolution = min(_MAX_RESOLUTION * rate, 1e-3)
        # TATs are kept in emission intervals (seconds x rate): admitting a
        # request then adds exactly 1.0, so rounding never accumulates, and
        # the burst tolerance is the integer ``burst``.
        self._tats: dict[K, float] = {}
        self._sweep_at = _MIN_SWEEP

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Requests allowed at once beyond the rate."""
        return self._burst

    def __len__(self) -> int:
        """Keys currently held (active ones, plus stale ones not yet swept)."""
        return len(self._tats)

    def reserve(self, key: K, now: float) -> float:
        """Take the next slot for ``key`` and say how long to wait for it.

        The slot is committed: the caller must start its request after the
        returned wait (not drop it), and later callers queue behind it.

        Args:
            key: what the limit applies to.
            now: the current time, e.g. ``trio.current_time()``.

        Returns:
            Seconds to wait before starting, >= 0 (0 means now).
        """
        now_u = now * self._rate
        tats = self._tats
        tat = tats.get(key)
        if tat is None:
            if len(tats) >= self._sweep_at:
                tats = self._sweep(now_u)
            tat = now_u
        elif tat < now_u:
            tat = now_u
        tats[key] = tat + 1.0
        wait = tat - self._burst - now_u
        return wait / self._rate if wait > self._resolution else 0.0

    def would_wait(self, key: K, now: float) -> float:
        """What :meth:`reserve` would return now, without taking the slot."""
        now_u = now * self._rate
        wait = max(self._tats.get(key, now_u), now_u) - self._burst - now_u
        return wait / self._rate if wait > self._resolution else 0.0

    def pause_until(self, key: K, until: float) -> None:
        """Start no request for ``key`` before ``until`` (e.g. Retry-After).

        After the pause requests resume at ``rate`` with no burst: a site that
        just asked us to back off gets the gentlest restart.
        """
        floor = until * self._rate + self._burst
        if self._tats.get(key, -math.inf) < floor:
            self._tats[key] = floor

    def _sweep(self, now_u: float) -> dict[K, float]:
        # Rebuilding (rather than deleting in place) gives the memory back:
        # dicts never shrink on deletion.
        live = {key: tat for key, tat in self._tats.items() if tat > now_u}
        self._tats = live
        self._sweep_at = max(_MIN_SWEEP, 2 * len(live))
        return live


_RATE = re.compile(
    r"\s*(?P<count>\d+(?:\.\d*)?|\.\d+)\s*r?\s*/\s*"
    r"(?P<every>\d+(?:\.\d*)?|\.\d+)?\s*(?P<unit>[a-z]*)\s*",
    re.IGNORECASE,
)
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}


def parse_rate(text: str) -> float:
    """Parse a rate such as ``"5/s"``, ``"300/m"``, ``"1/10s"`` or ``"2r/s"``.

    The form is ``COUNT/[EVERY]UNIT``: COUNT requests every EVERY (default 1)
    units of s, m, h or d (long forms such as ``min`` or ``hours`` too). Both
    numbers may have decimals.

    Args:
        text: the rate as written in the settings.

    Returns:
        Requests per second.

    Raises:
        ValueError: not of that form, an unknown unit, or a zero count or
            period; the message quotes the text.
    """
    m = _RATE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"invalid rate {text!r}: expected COUNT/PERIOD, such as '5/s', '300/m' or '1/10s'"
        )
    unit = m["unit"].lower()
    if unit not in _UNITS:
        what = f"unknown unit {m['unit']!r}" if unit else "no unit"
        raise ValueError(f"invalid rate {text!r}: {what} (use s, m, h or d)")
    count = float(m["count"])
    every = float(m["every"]) if m["every"] else 1.0
    if count <= 0:
        raise ValueError(f"invalid rate {text!r}: the count must be more than 0")
    if every <= 0:
        raise ValueError(f"invalid rate {text!r}: the period must be more than 0")
    return count / (every * _UNITS[unit])
