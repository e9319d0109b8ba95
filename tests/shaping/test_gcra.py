"""GCRA arithmetic: waits, bursts, long-run rate, order, memory."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._shaping import GcraLimiter

RATES = st.floats(min_value=0.05, max_value=1000.0)
BURSTS = st.integers(min_value=0, max_value=30)
# Clock readings a crawl meets: MockClock starts at 0, trio's real clock has a
# random offset up to 2e5 s, CLOCK_MONOTONIC grows with uptime (1 year ~ 3e7 s).
OFFSETS = st.sampled_from([0.0, 12_345.678, 199_999.999, 3.1e7])
# Float noise allowed in window counts: far below one request.
SLACK = 2e-3


def starts_of(limiter: GcraLimiter[str], arrivals: list[float]) -> list[float]:
    return [now + limiter.reserve("k", now) for now in arrivals]


@given(
    rate=RATES,
    burst=BURSTS,
    offset=OFFSETS,
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=150),
)
def test_waits_are_never_negative_and_order_is_kept(
    rate: float, burst: int, offset: float, gaps: list[float]
) -> None:
    limiter = GcraLimiter[str](rate, burst)
    now = offset
    starts = []
    for gap in gaps:
        now += gap / rate  # arrivals from "all at once" to three intervals apart
        wait = limiter.reserve("k", now)
        assert wait >= 0
        starts.append(now + wait)
    assert starts == sorted(starts)


@given(
    rate=RATES,
    burst=BURSTS,
    offset=OFFSETS,
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=2, max_size=120),
)
def test_no_window_admits_more_than_rate_times_length_plus_burst_plus_one(
    rate: float, burst: int, offset: float, gaps: list[float]
) -> None:
    limiter = GcraLimiter[str](rate, burst)
    arrivals = [offset + sum(gaps[: i + 1]) / rate for i in range(len(gaps))]
    starts = starts_of(limiter, arrivals)
    # The windows [starts[i], starts[j]] are the tightest ones: any window
    # holding starts i..j is at least that long.
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            admitted = j - i + 1
            assert admitted <= rate * (starts[j] - starts[i]) + burst + 1 + SLACK


@given(
    rate=RATES,
    burst=BURSTS,
    offset=OFFSETS,
    lags=st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=120),
    windows=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20),
)
def test_a_backlogged_key_gets_at_least_rate_times_length_minus_one(
    rate: float,
    burst: int,
    offset: float,
    lags: list[float],
    windows: list[tuple[float, float]],
) -> None:
    limiter = GcraLimiter[str](rate, burst)
    # Each request arrives before the previous one has started: the key is
    # never idle, so the limiter alone decides the pace.
    now, starts = offset, []
    for lag in lags:
        start = now + limiter.reserve("k", now)
        starts.append(start)
        now += lag * (start - now)
    span = starts[-1] - starts[0]
    for a, b in windows:
        lo = starts[0] + min(a, b) * span
        hi = starts[0] + max(a, b) * span
        admitted = bisect.bisect_right(starts, hi) - bisect.bisect_left(starts, lo)
        assert admitted >= rate * (hi - lo) - 1 - SLACK


@pytest.mark.parametrize("offset", [0.0, 12_345.678, 199_999.999, 3.1e7])
@pytest.mark.parametrize(("rate", "burst"), [(0.1, 0), (3.0, 1), (7.0, 4), (1000.0, 30)])
def test_a_burst_is_exactly_burst_plus_one(offset: float, rate: float, burst: int) -> None:
    limiter = GcraLimiter[str](rate, burst)
    waits = [limiter.reserve("k", offset) for _ in range(burst + 4)]
    assert waits[: burst + 1] == [0.0] * (burst + 1)
    # Within the float resolution of the clock reading (4 ns at 3e7 s).
    assert waits[burst + 1 :] == pytest.approx([1 / rate, 2 / rate, 3 / rate], abs=1e-7)


@pytest.mark.parametrize(
    ("rate", "burst", "now"),
    [
        # now x rate just below a power of two: adding 1.0 crosses into a
        # coarser binade and rounds, leaving a wait of a few nanoseconds.
        (1000.0, 7, 67_108.86386355977),
        (7.0, 26, 4_793_490.284733329),
        (419.130971656906, 20, 78.18067060689197),
    ],
)
def test_float_rounding_never_splits_a_burst(rate: float, burst: int, now: float) -> None:
    limiter = GcraLimiter[str](rate, burst)
    waits = [limiter.reserve("k", now) for _ in range(burst + 2)]
    assert waits[: burst + 1] == [0.0] * (burst + 1)
    assert waits[burst + 1] == pytest.approx(1 / rate, abs=1e-7)


@pytest.mark.parametrize("refilled", [1, 2, 3, 5])
def test_an_idle_key_regains_one_request_per_interval(refilled: int) -> None:
    limiter = GcraLimiter[str](rate=4.0, burst=4)
    t0 = 1234.5
    for _ in range(5):
        assert limiter.reserve("k", t0) == 0.0
    now = t0 + refilled * 0.25
    waits = [limiter.reserve("k", now) for _ in range(refilled + 1)]
    assert waits[:refilled] == [0.0] * refilled
    assert waits[refilled] == pytest.approx(0.25, rel=1e-9)


def test_long_run_rate_is_exact() -> None:
    limiter = GcraLimiter[str](rate=7.0, burst=4)
    start = 54_321.0
    starts = [start + limiter.reserve("k", start) for _ in range(100_000)]
    assert starts.count(start) == 5
    # Request n (from 0) starts at (n - burst) / rate: no drift, however long.
    assert starts[-1] - start == pytest.approx((100_000 - 1 - 4) / 7.0, abs=1e-9)
    in_last_hour = sum(1 for s in starts if s > starts[-1] - 3600)
    assert in_last_hour == 3600 * 7


def test_keys_are_independent() -> None:
    limiter = GcraLimiter[str](rate=1.0, burst=0)
    assert limiter.reserve("a", 0.0) == 0.0
    assert limiter.reserve("a", 0.0) == 1.0
    assert limiter.reserve("b", 0.0) == 0.0
    assert limiter.reserve("a", 0.0) == 2.0


def test_would_wait_does_not_take_the_slot() -> None:
    limiter = GcraLimiter[str](rate=2.0, burst=1)
    assert limiter.would_wait("k", 10.0) == 0.0
    limiter.reserve("k", 10.0)
    limiter.reserve("k", 10.0)
    assert limiter.would_wait("k", 10.0) == 0.5
    assert limiter.would_wait("k", 10.0) == 0.5
    assert limiter.reserve("k", 10.0) == 0.5
    assert limiter.would_wait("k", 10.0) == 1.0
    assert limiter.would_wait("k", 10.75) == 0.25


def test_a_clock_going_backwards_never_gives_a_negative_wait() -> None:
    limiter = GcraLimiter[str](rate=1.0, burst=0)
    assert limiter.reserve("k", 100.0) == 0.0
    # The slot at 101 was taken; asked "at 50" the wait reaches it.
    assert limiter.reserve("k", 50.0) == 51.0
    assert limiter.would_wait("other", 50.0) == 0.0


def test_pause_until_holds_requests_then_resumes_without_a_burst() -> None:
    limiter = GcraLimiter[str](rate=2.0, burst=3)
    limiter.pause_until("k", 30.0)
    assert limiter.reserve("k", 10.0) == 20.0
    assert limiter.reserve("k", 10.0) == 20.5
    assert limiter.reserve("k", 10.0) == 21.0
    # A pause never shortens what is already booked.
    limiter.pause_until("k", 5.0)
    assert limiter.reserve("k", 10.0) == 21.5
    assert limiter.reserve("other", 10.0) == 0.0


def test_stale_keys_are_forgotten_so_memory_stays_bounded() -> None:
    limiter = GcraLimiter[str](rate=1.0, burst=0)
    for second in range(50):
        for i in range(1000):
            limiter.reserve(f"{second}-{i}", float(second))
    # 50,000 keys seen, each idle again one second later.
    assert len(limiter) <= 2 * 1024 + 1000


def test_forgetting_is_exact_and_active_keys_are_kept() -> None:
    limiter = GcraLimiter[str](rate=1.0, burst=2)
    for i in range(3000):
        for _ in range(8):
            limiter.reserve(f"busy-{i}", 0.0)  # booked until t = 6
    for i in range(20_000):
        limiter.reserve(f"new-{i}", 1.0)  # forces several sweeps at t = 1
    assert len(limiter) <= 3000 + 2 * 20_000
    for i in range(3000):
        assert limiter.would_wait(f"busy-{i}", 1.0) == 5.0
    # A key forgotten while idle behaves as one never seen.
    late = [limiter.reserve("new-0", 100.0) for _ in range(4)]
    assert late == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 0, "rate must be a positive number"),
        (-1, 0, "rate must be a positive number"),
        (math.inf, 0, "rate must be a positive number"),
        (math.nan, 0, "rate must be a positive number"),
        (1, -1, "burst must be a whole number >= 0, not -1"),
        (1, 1.5, "burst must be a whole number >= 0, not 1.5"),
    ],
)
def test_bad_parameters_are_refused(rate: float, burst: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        GcraLimiter[str](rate, burst)
