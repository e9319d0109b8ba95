"""The configuration and records of circuit breakers (see ``_breaker``)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

__all__ = ["BreakerConfig", "BreakerState", "BreakerStatistics", "Transition"]

BreakerState = Literal["closed", "open", "half-open"]


class BreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds and timings of a circuit breaker (defaults in code).

    Raises:
        ValueError: ``cooldown_max`` is below ``cooldown`` (a
            ``msgspec.ValidationError`` when decoded).
    """

    window: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds of outcomes the failure rate is computed over (in tenths:
    an outcome is forgotten 27 to 30 seconds later), and the longest gap
    allowed within a run of consecutive failures."""
    min_requests: Annotated[int, msgspec.Meta(ge=1)] = 10
    """Outcomes the window must hold before ``failure_rate`` can trip it:
    two failures out of three requests say little."""
    failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    """Share of failed outcomes in the window that trips the breaker."""
    consecutive_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Failures in a row that trip the breaker whatever the rate: catches a
    target that dies outright before ``min_requests`` have accumulated."""
    cooldown: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    """Seconds the breaker stays open after its first trip."""
    cooldown_max: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    """Cap on the cool-down, however often the breaker trips."""
    cooldown_multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    """Growth of the cool-down on each trip after the first with no
    successful close in between (half-open probes that fail count)."""
    half_open_probes: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Requests a half-open breaker lets through at the same time."""
    half_open_successes: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Successful probes that close a half-open breaker. Equal to
    ``half_open_probes`` by default: the whole first batch must succeed."""

    def __post_init__(self) -> None:
        if self.cooldown_max < self.cooldown:
            raise ValueError(
                f"cooldown_max ({self.cooldown_max:g}) must be at least cooldown "
                f"({self.cooldown:g})"
            )


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a breaker's state, as handed to ``on_transition``.

    Attributes:
        key: the breaker's key.
        old: the state it left.
        new: the state it entered.
        at: when it happened (for open → half-open: when the cool-down
            ended, even if noticed later).
        reason: why, for the log and stats.
        cooldown: seconds it will stay open, when ``new`` is "open"; else 0.
    """

    key: Hashable
    old: BreakerState
    new: BreakerState
    at: float
    reason: str
    cooldown: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerStatistics:
    """A snapshot of one breaker (see :meth:`Breaker.statistics`)."""

    state: BreakerState
    trips: int
    requests: int
    """Outcomes in the window (closed state only; reset by transitions)."""
    failures: int
    """Failed outcomes in the window."""
    consecutive_failures: int
    probes: int
    """Half-open probe slots taken."""
    in_flight: int
    """Permits handed out and not yet recorded or released."""
    cooldown: float
    """The length of the current (or last) open period; 0 before any trip."""
    half_opens_at: float | None
