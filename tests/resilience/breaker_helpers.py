"""Shared helpers of the breaker tests."""

from __future__ import annotations

import msgspec

from crawlmesh._resilience import Breaker, BreakerConfig, Permit, Transition

# 1 s buckets, a rate trigger at 2 of 4, a run trigger at 3 in a row.
FAST = BreakerConfig(
    window=10.0,
    min_requests=4,
    failure_rate=0.5,
    consecutive_failures=3,
    cooldown=5.0,
    cooldown_max=20.0,
    cooldown_multiplier=2.0,
    half_open_probes=2,
    half_open_successes=2,
)


def make(**changes: float) -> tuple[Breaker, list[Transition]]:
    seen: list[Transition] = []
    config = msgspec.structs.replace(FAST, **changes)
    return Breaker(config, key="k", on_transition=seen.append), seen


def outcome(breaker: Breaker, ok: bool, now: float) -> None:
    permit = breaker.try_acquire(now)
    assert permit is not None, f"refused at {now}"
    breaker.record(permit, ok, now)


def trip(breaker: Breaker, now: float) -> None:
    """Open a closed breaker with a run of failures, all at ``now``."""
    for _ in range(breaker.config.consecutive_failures):
        outcome(breaker, False, now)
    assert breaker.state(now) == "open"


def probes(breaker: Breaker, now: float, n: int) -> list[Permit]:
    permits = [breaker.try_acquire(now) for _ in range(n)]
    assert all(p is not None and p.probe for p in permits)
    return [p for p in permits if p is not None]
