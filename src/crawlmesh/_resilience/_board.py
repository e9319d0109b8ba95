"""Breakers by key, with memory bounded by what is active.

A broad crawl touches many (node, domain) pairs, most of them for a few
requests; a breaker kept forever for each would grow without bound. A
breaker carries no information once it is closed and idle for a window:
its counts have slid out and a run of failures with a window-long gap
starts over, so forgetting it and creating a fresh one on next use changes
nothing. An open or half-open breaker is kept for longer
(``open_ttl``, by default a window plus the longest cool-down), so a dead
target is not retried at full rate the moment it is forgotten. A breaker
with permits in flight is never forgotten, so no outcome is lost.

Forgetting is incremental: each :meth:`BreakerBoard.get` looks at the two
least recently used breakers, so the cost per call stays O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._breaker import Breaker
from ._breaker_config import BreakerConfig, Transition
from ._window import resolve_now

__all__ = ["BoardStatistics", "BreakerBoard"]

K = TypeVar("K", bound=Hashable)

# Breakers examined per get(): more than one, so the sweep outpaces the
# arrival of new keys and the board shrinks back after a burst.
_SWEEP_STEP = 2


@dataclass(frozen=True, slots=True)
class BoardStatistics:
    """A snapshot of a :class:`BreakerBoard`."""

    breakers: int
    """Breakers held (closed, idle ones may have been forgotten)."""
    open: int
    half_open: int
    trips: int
    """Trips of every breaker since the board was made, forgotten ones too."""
    forgotten: int
    """Breakers dropped as idle since the board was made."""


class BreakerBoard(Generic[K]):
    """One :class:`Breaker` per key, created on first use.

    Get the breaker for each request (do not keep one across requests: an
    idle breaker may be replaced by a fresh one; a held permit pins it).

    Args:
        config: every breaker's thresholds (defaults if None).
        on_transition: called after any breaker changes state, with the
            breaker's key in the :class:`Transition`; must not raise.
        idle_ttl: seconds after which a closed breaker with nothing in
            flight is forgotten; ``config.window`` if None (no shorter, or
            a forgotten breaker would lose counts).
        open_ttl: the same for an open or half-open breaker;
            ``config.window + config.cooldown_max`` if None.
    """

    __slots__ = (
        "_entries",
        "_forgotten",
        "_idle_ttl",
        "_on_transition",
        "_open_ttl",
        "_trips",
        "config",
    )

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        on_transition: Callable[[Transition], None] | None = None,
        idle_ttl: float | None = None,
        open_ttl: float | None = None,
    ) -> None:
        self.config = config if config is not None else BreakerConfig()
        self._on_transition = on_transition
        self._idle_ttl = self.config.window if idle_ttl is None else idle_ttl
        self._open_ttl = (
            self.config.window + self.config.cooldown_max if open_ttl is None else open_ttl
        )
        # key -> (breaker, last get), least recently used first.
        self._entries: OrderedDict[K, tuple[Breaker, float]] = OrderedDict()
        self._trips = 0
        self._forgotten = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))

    def get(self, key: K, now: float | None = None) -> Breaker:
        """The breaker for ``key``, a fresh closed one if there is none."""
        now = resolve_now(now)
        entry = self._entries.pop(key, None)
        breaker = entry[0] if entry is not None else self._new(key)
        self._entries[key] = (breaker, now)
        for _ in range(_SWEEP_STEP):
            if not self._sweep_oldest(now):
                break
        return breaker

    def peek(self, key: K) -> Breaker | None:
        """The breaker for ``key`` if there is one; creates nothing."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def sweep(self, now: float | None = None) -> int:
        """Forget every idle breaker now (O(n)); returns how many."""
        now = resolve_now(now)
        idle = [key for key, entry in self._entries.items() if self._idle(entry, now)]
        for key in idle:
            del self._entries[key]
        self._forgotten += len(idle)
        return len(idle)

    def statistics(self, now: float | None = None) -> BoardStatistics:
        """Counts over the breakers held, at ``now`` (O(n))."""
        now = resolve_now(now)
        states = [breaker.state(now) for breaker, _ in self._entries.values()]
        return BoardStatistics(
            breakers=len(states),
            open=states.count("open"),
            half_open=states.count("half-open"),
            trips=self._trips,
            forgotten=self._forgotten,
        )

    def _new(self, key: K) -> Breaker:
        return Breaker(self.config, key=key, on_transition=self._transition)

    def _transition(self, transition: Transition) -> None:
        if transition.new == "open":
            self._trips += 1
        if self._on_transition is not None:
            self._on_transition(transition)

    def _idle(self, entry: tuple[Breaker, float], now: float) -> bool:
        breaker, last_get = entry
        if breaker.in_flight:
            return False
        ttl = self._idle_ttl if breaker.state(now) == "closed" else self._open_ttl
        return now - max(last_get, breaker.last_active) >= ttl

    def _sweep_oldest(self, now: float) -> bool:
        """Forget or rotate the least recently used breaker; False to stop."""
        key, entry = next(iter(self._entries.items()))
        breaker, last_get = entry
        if now - max(last_get, breaker.last_active) < min(self._idle_ttl, self._open_ttl):
            # Entries are in order of last get, so the rest are recent too
            # (rotated ones aside: a later pass reaches them).
            return False
        if self._idle(entry, now):
            del self._entries[key]
            self._forgotten += 1
        else:
            # Open or in flight but not yet forgettable: rotate it to the back
            # so it does not block the breakers behind it.
            self._entries.move_to_end(key)
        return True
