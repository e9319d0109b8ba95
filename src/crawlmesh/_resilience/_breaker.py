"""A circuit breaker: stop sending to something that keeps failing.

One :class:`Breaker` guards one key (the integrator keeps one per node and
one per (node, domain) pair, see :class:`~._board.BreakerBoard`)::

    closed ──failure rate or a run of failures──▶ open
      ▲                                            │ cool-down passes
      │ half_open_successes probes succeed         ▼
      └──────────────────────────────────────── half-open
                     any probe fails: open again, for longer

* **Closed** admits everything and counts outcomes in a sliding window. It
  trips when at least ``min_requests`` outcomes in the window fail at
  ``failure_rate`` or more, or when ``consecutive_failures`` fail in a row
  (a run that gaps by a whole window starts over).
* **Open** admits nothing for a cool-down, ``cooldown`` seconds on the first
  trip and ``cooldown_multiplier`` times longer on each further trip with no
  successful close in between, up to ``cooldown_max``.
* **Half-open** admits at most ``half_open_probes`` requests at a time, each
  holding a :class:`Permit` whose slot frees when its outcome is recorded or
  it is released (a cancelled probe cannot wedge the breaker). Enough
  successes close it and reset the cool-down; one failure re-opens it.

Outcomes belong to the state that admitted the request: a permit carries the
breaker's generation (bumped on every transition), and a request admitted
before a transition that finishes after it is not counted. A slow request
sent while closed therefore cannot re-open a breaker that is probing, nor
close it without a real probe.

Time is passed in as ``now`` (``trio.current_time()`` when omitted), and
open → half-open happens lazily at the first query at or after
:attr:`Breaker.half_opens_at`, reported with that time as its ``at``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

from ._breaker_config import BreakerConfig, BreakerState, BreakerStatistics, Transition
from ._permit import Permit
from ._window import SlidingCounts, resolve_now

__all__ = ["Breaker"]


class Breaker:
    """The circuit breaker of one key (see the module docstring).

    Synchronous and O(1) per call; lives on the event loop.

    Args:
        config: thresholds and timings (defaults if None).
        key: what it guards, passed back in each :class:`Transition`.
        on_transition: called after each change of state; must not raise.
    """

    __slots__ = (
        "_cooldown",
        "_generation",
        "_half_opens_at",
        "_in_flight",
        "_last_active",
        "_last_failure",
        "_on_transition",
        "_probes",
        "_run",
        "_state",
        "_streak",
        "_successes",
        "_trips",
        "_window",
        "config",
        "key",
    )

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        key: Hashable = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.config = config if config is not None else BreakerConfig()
        self.key = key
        self._on_transition = on_transition
        self._state: BreakerState = "closed"
        self._generation = 0
        self._window = SlidingCounts(self.config.window)
        self._run = 0  # consecutive failures (closed)
        self._last_failure = -math.inf
        self._successes = 0  # successful probes (half-open)
        self._probes = 0  # probe permits in flight, from any half-open period
        self._in_flight = 0
        self._streak = 0  # trips since the last successful close
        self._cooldown = 0.0
        self._half_opens_at: float | None = None
        self._trips = 0
        self._last_active = -math.inf

    @property
    def trips(self) -> int:
        """How many times it has opened (from closed or half-open)."""
        return self._trips

    @property
    def cooldown(self) -> float:
        """Seconds of the current (or last) open period; 0 before any trip."""
        return self._cooldown

    @property
    def half_opens_at(self) -> float | None:
        """When an open breaker will admit probes; None unless open.

        Callers that park requests can sleep until then. Reading it does not
        apply the transition: call :meth:`state` (or any method taking
        ``now``) for that.
        """
        return self._half_opens_at if self._state == "open" else None

    @property
    def in_flight(self) -> int:
        """Permits handed out and not yet recorded or released."""
        return self._in_flight

    @property
    def last_active(self) -> float:
        """When a permit was last handed out or an outcome recorded."""
        return self._last_active

    def state(self, now: float | None = None) -> BreakerState:
        """The state at ``now``, after a cool-down that has ended."""
        self._refresh(resolve_now(now))
        return self._state

    def allow(self, now: float | None = None) -> bool:
        """Whether :meth:`try_acquire` would succeed now; reserves nothing."""
        self._refresh(resolve_now(now))
        if self._state == "half-open":
            return self._probes < self.config.half_open_probes
        return self._state == "closed"

    def next_admit_at(self, now: float | None = None) -> float:
        """The earliest time a request may be admitted.

        ``now`` when it would be admitted now; the end of the cool-down when
        open; ``math.inf`` when half-open with every probe slot taken (a
        slot frees when a probe's permit is recorded or released, which its
        holder sees, or the breaker changes state, which ``on_transition``
        reports).
        """
        now = resolve_now(now)
        if self.allow(now):
            return now
        if self._state == "open":
            assert self._half_opens_at is not None
            return self._half_opens_at
        return math.inf

    def statistics(self, now: float | None = None) -> BreakerStatistics:
        """A snapshot of counters and state at ``now``."""
        now = resolve_now(now)
        self._refresh(now)
        self._window.advance(now)
        return BreakerStatistics(
            state=self._state,
            trips=self._trips,
            requests=self._window.requests,
            failures=self._window.flagged,
            consecutive_failures=self._run,
            probes=self._probes,
            in_flight=self._in_flight,
            cooldown=self._cooldown,
            half_opens_at=self.half_opens_at,
        )

    def try_acquire(self, now: float | None = None) -> Permit | None:
        """A permit to send one request, or None if the breaker refuses it."""
        now = resolve_now(now)
        self._refresh(now)
        if self._state == "closed":
            probe = False
        elif self._state == "half-open" and self._probes < self.config.half_open_probes:
            probe = True
            self._probes += 1
        else:
            return None
        self._in_flight += 1
        self._last_active = now
        return Permit(self, self._generation, probe)

    def record(self, permit: Permit | None, ok: bool, now: float | None = None) -> None:
        """Report the outcome of a request.

        Args:
            permit: the request's permit; its slot is freed. None reports an
                outcome seen without one, which counts only while closed.
            ok: the target (or node) served it; False for a fault or a ban.
            now: when the outcome was seen.

        Raises:
            ValueError: the permit belongs to another breaker.
            RuntimeError: the permit was already recorded or released.
        """
        now = resolve_now(now)
        if permit is not None:
            if permit.breaker is not self:
                raise ValueError("permit belongs to another breaker")
            if permit.done:
                raise RuntimeError("permit already recorded or released")
            self._finish(permit)
        self._last_active = now
        self._refresh(now)
        if permit is None:
            if self._state != "closed":
                return
        elif permit.generation != self._generation:
            return  # admitted by an earlier state: says nothing about this one
        if self._state == "closed":
            self._record_closed(ok, now)
        elif self._state == "half-open":
            if not ok:
                self._trip(now, "probe failed")
                return
            self._successes += 1
            if self._successes >= self.config.half_open_successes:
                self._close(now)

    def release(self, permit: Permit) -> None:
        """Free a permit's slot without an outcome; does nothing if done.

        Raises:
            ValueError: the permit belongs to another breaker.
        """
        if permit.breaker is not self:
            raise ValueError("permit belongs to another breaker")
        if not permit.done:
            self._finish(permit)

    def _finish(self, permit: Permit) -> None:
        permit.done = True
        self._in_flight -= 1
        if permit.probe:
            # Slots count probes physically in flight, whichever half-open
            # period admitted them, so the bound holds across re-opens.
            self._probes -= 1

    def _record_closed(self, ok: bool, now: float) -> None:
        cfg = self.config
        window = self._window
        window.add(now, 1, 0 if ok else 1)
        if ok:
            self._run = 0
            return
        if now - self._last_failure >= cfg.window:
            self._run = 0  # an old failure and a new one are not a run
        self._run += 1
        self._last_failure = now
        if self._run >= cfg.consecutive_failures:
            self._trip(now, f"{self._run} consecutive failures")
        elif (
            window.requests >= cfg.min_requests
            # Division, not flagged >= rate * requests: 0.3 * 10 > 3.0.
            and window.flagged / window.requests >= cfg.failure_rate
        ):
            self._trip(now, f"{window.flagged}/{window.requests} failed in {cfg.window:g}s")

    def _trip(self, now: float, reason: str) -> None:
        cfg = self.config
        if self._streak == 0:
            cooldown = cfg.cooldown
        else:
            cooldown = min(self._cooldown * cfg.cooldown_multiplier, cfg.cooldown_max)
        self._streak += 1
        self._trips += 1
        self._cooldown = cooldown
        self._half_opens_at = now + cooldown
        self._enter("open", now, reason, cooldown)

    def force_open(self, now: float, cooldown: float, reason: str) -> bool:
        """Open for ``cooldown`` seconds because another process's breaker
        for the same thing opened (a shared crawl); False if already open
        at least that long. The half-open probe that follows is local."""
        until = now + cooldown
        opens_until = self._half_opens_at if self._state == "open" else None
        if opens_until is not None and opens_until >= until:
            return False
        self._half_opens_at = until
        self._trips += 1
        self._enter("open", now, reason, cooldown)
        return True

    def _close(self, now: float) -> None:
        self._streak = 0
        self._half_opens_at = None
        self._enter("closed", now, f"{self._successes} probes succeeded")

    def _refresh(self, now: float) -> None:
        if self._state == "open":
            assert self._half_opens_at is not None
            if now >= self._half_opens_at:
                self._enter("half-open", self._half_opens_at, "cool-down over")

    def _enter(self, new: BreakerState, at: float, reason: str, cooldown: float = 0.0) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._window.reset()
        self._run = 0
        self._last_failure = -math.inf
        self._successes = 0
        if self._on_transition is not None:
            self._on_transition(Transition(self.key, old, new, at, reason, cooldown))
