"""Circuit breaker transitions, at exact times given as ``now``."""

from __future__ import annotations

import math

import msgspec
import pytest

from crawlmesh._resilience import BreakerConfig, Transition
from resilience.breaker_helpers import make, outcome, probes, trip


def test_closed_open_half_open_closed_at_exact_times() -> None:
    breaker, seen = make()
    outcome(breaker, False, 1.0)
    outcome(breaker, False, 2.0)
    assert breaker.state(2.0) == "closed"
    outcome(breaker, False, 3.0)
    assert seen == [Transition("k", "closed", "open", 3.0, "3 consecutive failures", 5.0)]
    assert breaker.half_opens_at == 8.0
    assert breaker.trips == 1

    assert breaker.try_acquire(7.999) is None
    assert breaker.state(7.999) == "open"
    assert breaker.next_admit_at(7.999) == 8.0
    # Noticed late, reported at the moment the cool-down ended.
    assert breaker.state(9.5) == "half-open"
    assert seen[-1] == Transition("k", "open", "half-open", 8.0, "cool-down over")
    assert breaker.half_opens_at is None

    first, second = probes(breaker, 9.5, 2)
    breaker.record(first, True, 9.6)
    assert breaker.state(9.6) == "half-open"
    breaker.record(second, True, 9.7)
    assert breaker.state(9.7) == "closed"
    assert seen[-1] == Transition("k", "half-open", "closed", 9.7, "2 probes succeeded")
    assert breaker.statistics(9.7).requests == 0  # closed starts with a clean window


def test_each_failed_probe_reopens_for_longer_up_to_the_cap() -> None:
    breaker, seen = make()
    trip(breaker, 3.0)
    now = 3.0
    for expected in (10.0, 20.0, 20.0, 20.0):
        now = breaker.half_opens_at or math.nan
        [probe] = probes(breaker, now, 1)
        breaker.record(probe, False, now + 0.5)
        assert seen[-1].new == "open"
        assert seen[-1].reason == "probe failed"
        assert breaker.cooldown == expected
        assert breaker.half_opens_at == now + 0.5 + expected
    assert [t.cooldown for t in seen if t.new == "open"] == [5.0, 10.0, 20.0, 20.0, 20.0]
    assert breaker.trips == 5


def test_a_successful_close_resets_the_cooldown() -> None:
    breaker, _ = make()
    trip(breaker, 0.0)
    [probe] = probes(breaker, 5.0, 1)
    breaker.record(probe, False, 5.0)  # re-opened for 10 s
    assert breaker.cooldown == 10.0
    for probe in probes(breaker, 15.0, 2):
        breaker.record(probe, True, 15.0)
    assert breaker.state(15.0) == "closed"
    trip(breaker, 20.0)
    assert breaker.cooldown == 5.0
    assert breaker.half_opens_at == 25.0


def test_failure_rate_trips_without_a_run() -> None:
    breaker, seen = make(consecutive_failures=100)
    for ok, now in [(True, 0.1), (False, 0.2), (True, 0.3)]:
        outcome(breaker, ok, now)
    assert breaker.state(0.3) == "closed"
    outcome(breaker, False, 0.4)
    assert breaker.state(0.4) == "open"
    assert seen[-1].reason == "2/4 failed in 10s"


def test_a_failure_rate_below_the_threshold_never_trips() -> None:
    breaker, seen = make(consecutive_failures=100)
    for i in range(400):  # one failure in four, for 40 s
        outcome(breaker, i % 4 != 0, i * 0.1)
    assert seen == []


def test_min_requests_holds_back_the_rate_trigger() -> None:
    breaker, _ = make(consecutive_failures=100, min_requests=6)
    for i in range(5):
        outcome(breaker, False, float(i))
    assert breaker.state(5.0) == "closed"  # 5 of 5 failed, but 5 < 6
    outcome(breaker, False, 5.0)
    assert breaker.state(5.0) == "open"


def test_consecutive_failures_trip_before_min_requests() -> None:
    breaker, seen = make(min_requests=100)
    for i in range(3):
        outcome(breaker, False, float(i))
    assert seen[-1].reason == "3 consecutive failures"


def test_a_success_breaks_the_run() -> None:
    breaker, seen = make(min_requests=100)
    for ok in (False, False, True, False, False, True, False, False):
        outcome(breaker, ok, 1.0)
    assert seen == []


@pytest.mark.parametrize(("last", "state"), [(14.9, "open"), (15.0, "closed")])
def test_a_run_with_a_window_long_gap_starts_over(last: float, state: str) -> None:
    breaker, _ = make(min_requests=100)
    outcome(breaker, False, 0.0)
    outcome(breaker, False, 5.0)
    outcome(breaker, False, last)
    assert breaker.state(last) == state


@pytest.mark.parametrize(("last", "state"), [(9.999, "open"), (10.0, "closed")])
def test_old_failures_slide_out_of_the_window(last: float, state: str) -> None:
    # Three failures in buckets 0, 1, 2; a fourth at `last` trips only
    # while the one in bucket 0 is still in the window.
    breaker, _ = make(consecutive_failures=100)
    for now in (0.5, 1.5, 2.5):
        outcome(breaker, False, now)
    outcome(breaker, False, last)
    assert breaker.state(last) == state


def test_statistics_snapshot() -> None:
    breaker, _ = make()
    outcome(breaker, True, 0.0)
    outcome(breaker, False, 0.1)
    held = breaker.try_acquire(0.2)
    stats = breaker.statistics(0.2)
    assert (stats.state, stats.requests, stats.failures) == ("closed", 2, 1)
    assert (stats.consecutive_failures, stats.in_flight, stats.trips) == (1, 1, 0)
    assert held is not None


def test_default_config_matches_the_documented_values() -> None:
    assert msgspec.structs.asdict(BreakerConfig()) == {
        "window": 30.0,
        "min_requests": 10,
        "failure_rate": 0.5,
        "consecutive_failures": 5,
        "cooldown": 5.0,
        "cooldown_max": 300.0,
        "cooldown_multiplier": 2.0,
        "half_open_probes": 3,
        "half_open_successes": 3,
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cooldown": 10.0, "cooldown_max": 5.0}, "cooldown_max"),
        ({"window": 0}, "window"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"cooldown_multiplier": 0.5}, "cooldown_multiplier"),
        ({"windows": 3}, "windows"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, float], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, BreakerConfig)
