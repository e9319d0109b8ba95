"""Breaker invariants under arbitrary interleavings (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from crawlmesh._resilience import Breaker, BreakerConfig, Permit, Transition

LEGAL = {("closed", "open"), ("open", "half-open"), ("half-open", "open"), ("half-open", "closed")}


@st.composite
def configs(draw: st.DrawFn) -> BreakerConfig:
    cooldown = draw(st.sampled_from([0.5, 1.0, 3.0]))
    return BreakerConfig(
        window=draw(st.sampled_from([2.0, 5.0, 10.0])),
        min_requests=draw(st.integers(1, 6)),
        failure_rate=draw(st.sampled_from([0.2, 0.5, 1.0])),
        consecutive_failures=draw(st.integers(1, 4)),
        cooldown=cooldown,
        cooldown_max=cooldown * draw(st.sampled_from([1.0, 3.0, 10.0])),
        cooldown_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
        half_open_probes=draw(st.integers(1, 4)),
        half_open_successes=draw(st.integers(1, 4)),
    )


@dataclass(frozen=True)
class Acquire:
    pass


@dataclass(frozen=True)
class Finish:
    pick: int  # which outstanding permit, modulo their number
    ok: bool | None  # None: released without an outcome (cancelled)


@dataclass(frozen=True)
class Wait:
    seconds: float


# Long runs, so that most examples trip, probe, re-open and close.
ops = st.lists(
    st.one_of(
        st.just(Acquire()),
        st.builds(Finish, st.integers(0, 50), st.sampled_from([True, False, None])),
        st.builds(Wait, st.sampled_from([0.0, 0.1, 0.7, 2.5, 40.0])),
    ),
    min_size=50,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(configs(), ops)
def test_breaker_invariants(config: BreakerConfig, steps: list[Acquire | Finish | Wait]) -> None:
    seen: list[Transition] = []
    breaker = Breaker(config, key="k", on_transition=seen.append)
    outstanding: list[Permit] = []
    now = 0.0
    for step in steps:
        if isinstance(step, Wait):
            now += step.seconds
        elif isinstance(step, Acquire):
            state = breaker.state(now)
            permit = breaker.try_acquire(now)
            if state == "closed":
                assert permit is not None
                assert not permit.probe
            elif state == "open":
                assert permit is None
            if permit is not None:
                outstanding.append(permit)
        elif outstanding:
            permit = outstanding.pop(step.pick % len(outstanding))
            if step.ok is None:
                permit.release()
            else:
                breaker.record(permit, step.ok, now)

        # Never more probes in flight than the bound, counted from the
        # outside, across re-opens included.
        in_flight_probes = sum(p.probe for p in outstanding)
        assert in_flight_probes <= config.half_open_probes
        assert breaker.in_flight == len(outstanding)
        if breaker.state(now) == "half-open":
            assert breaker.allow(now) == (in_flight_probes < config.half_open_probes)

    check_transitions(config, seen)


def check_transitions(config: BreakerConfig, seen: list[Transition]) -> None:
    state = "closed"
    previous: float | None = None  # cool-down of the last trip since a close
    opened_at = 0.0
    for t in seen:
        assert t.old == state
        assert (t.old, t.new) in LEGAL
        state = t.new
        if t.new == "open":
            if previous is None:
                assert t.cooldown == config.cooldown
            else:
                # Monotone, by the multiplier, and capped.
                assert previous <= t.cooldown <= config.cooldown_max
                assert t.cooldown == min(previous * config.cooldown_multiplier, config.cooldown_max)
            previous = t.cooldown
            opened_at = t.at
        elif t.new == "half-open":
            assert t.at == opened_at + (previous or 0.0)
        else:
            previous = None
