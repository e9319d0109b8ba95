"""The AIMD concurrency controller."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._shaping import AimdController


def test_pushback_halves_the_limit_once_per_cooldown() -> None:
    aimd = AimdController(32, maximum=64, cooldown=1.0)
    assert aimd.on_pushback(0.0) is True
    assert aimd.limit == 16
    # The other failures of the same overload arrive just after: no cascade.
    assert aimd.on_pushback(0.1) is False
    assert aimd.on_pushback(0.99) is False
    assert aimd.limit == 16
    assert aimd.on_pushback(1.0) is True
    assert aimd.limit == 8
    assert aimd.on_pushback(2.0) is True
    assert aimd.limit == 4


def test_the_cooldown_is_at_least_one_round_trip() -> None:
    aimd = AimdController(32, maximum=64, cooldown=1.0, quiet=0.0)
    aimd.on_success(3.0, 0.0)  # smoothed latency: 3 s
    assert aimd.on_pushback(10.0) is True
    assert aimd.on_pushback(12.0) is False  # past the cooldown, within an RTT
    assert aimd.on_pushback(13.0) is True
    assert aimd.limit == 8


def test_the_limit_floors_at_the_minimum() -> None:
    aimd = AimdController(10, minimum=3, maximum=20, cooldown=0.0)
    limits = []
    for t in range(5):
        aimd.on_pushback(float(t))
        limits.append(aimd.limit)
    assert limits == [5, 3, 3, 3, 3]


@pytest.mark.parametrize(("backoff", "expected"), [(0.5, 5), (0.7, 7), (0.9, 9), (0.99, 9)])
def test_every_decrease_lowers_the_limit(backoff: float, expected: int) -> None:
    aimd = AimdController(10, maximum=20, backoff=backoff)
    aimd.on_pushback(0.0)
    assert aimd.limit == expected


def test_one_more_slot_per_window_of_successes() -> None:
    aimd = AimdController(4, maximum=100, target_latency=1.0)
    raised = [aimd.on_success(0.1, float(t)) for t in range(4 + 5 + 6)]
    # A window is as many successes as the limit: 4, then 5, then 6.
    assert [i for i, r in enumerate(raised) if r] == [3, 8, 14]
    assert aimd.limit == 7


def test_slow_successes_do_not_raise_and_restart_the_window() -> None:
    aimd = AimdController(4, maximum=100, target_latency=1.0)
    for _ in range(10):
        assert aimd.on_success(1.5, 0.0) is False
    assert aimd.limit == 4
    for latency in (0.1, 0.1, 0.1, 2.0, 0.1, 0.1, 0.1):
        aimd.on_success(latency, 0.0)
    assert aimd.limit == 4
    assert aimd.on_success(0.1, 0.0) is True
    assert aimd.limit == 5


def test_never_raises_within_quiet_seconds_of_a_pushback() -> None:
    aimd = AimdController(8, maximum=100, quiet=10.0, cooldown=1.0)
    aimd.on_pushback(100.0)
    assert aimd.limit == 4
    now = 100.0
    while now < 109.99:
        assert aimd.on_success(0.01, now) is False
        now += 0.01
    assert aimd.limit == 4
    # A pushback the cooldown ignored still counts as pushback.
    aimd.on_pushback(109.5)
    assert aimd.limit == 2
    aimd.on_pushback(109.9)
    for t in range(1, 20):
        aimd.on_success(0.01, 109.9 + t * 0.5)
    assert aimd.limit == 2
    # Quiet for 10 s: a full window of fast successes raises it again.
    assert [aimd.on_success(0.01, 120.0) for _ in range(2)] == [False, True]
    assert aimd.limit == 3


def test_the_limit_stops_at_the_maximum() -> None:
    aimd = AimdController(3, maximum=4)
    for _ in range(100):
        aimd.on_success(0.1, 0.0)
    assert aimd.limit == 4


def test_the_smoothed_latency_follows_successes() -> None:
    aimd = AimdController(1, maximum=1)
    assert aimd.latency is None
    aimd.on_success(1.0, 0.0)
    aimd.on_success(9.0, 0.0)
    assert aimd.latency == pytest.approx(2.0)


async def test_times_default_to_the_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    aimd = AimdController(16, maximum=16, cooldown=1.0)
    assert aimd.on_pushback() is True
    await trio.sleep(0.5)
    assert aimd.on_pushback() is False
    await trio.sleep(0.5)
    assert aimd.on_pushback() is True
    assert aimd.limit == 4
    await trio.sleep(9.99)
    assert [aimd.on_success(0.1) for _ in range(4)] == [False] * 4
    await trio.sleep(0.01)
    assert [aimd.on_success(0.1) for _ in range(4)] == [False, False, False, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0, "maximum": 4}, "need 1 <= minimum <= initial <= maximum, got 1, 0, 4"),
        ({"initial": 5, "maximum": 4}, "need 1 <= minimum <= initial <= maximum, got 1, 5, 4"),
        ({"initial": 2, "minimum": 3, "maximum": 4}, "need 1 <= minimum <= initial"),
        ({"initial": 2, "maximum": 4, "target_latency": 0.0}, "target_latency must be > 0"),
        ({"initial": 2, "maximum": 4, "backoff": 1.0}, "backoff must be between 0 and 1"),
        ({"initial": 2, "maximum": 4, "backoff": 0.0}, "backoff must be between 0 and 1"),
        ({"initial": 2, "maximum": 4, "cooldown": -1.0}, "cooldown and quiet must be >= 0"),
        ({"initial": 2, "maximum": 4, "quiet": -1.0}, "cooldown and quiet must be >= 0"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        AimdController(**kwargs)


EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5),  # time since the previous event
        st.one_of(st.none(), st.floats(min_value=0.001, max_value=4)),  # None: pushback
    ),
    max_size=300,
)


@given(
    events=EVENTS,
    initial=st.integers(1, 40),
    minimum=st.integers(1, 5),
    backoff=st.floats(min_value=0.1, max_value=0.95),
    quiet=st.floats(min_value=0, max_value=20),
)
def test_aimd_invariants(
    events: list[tuple[float, float | None]],
    initial: int,
    minimum: int,
    backoff: float,
    quiet: float,
) -> None:
    minimum = min(minimum, initial)
    target, cooldown = 1.0, 2.0
    aimd = AimdController(
        initial,
        minimum=minimum,
        maximum=64,
        target_latency=target,
        backoff=backoff,
        cooldown=cooldown,
        quiet=quiet,
    )
    now, last_pushback, last_decrease = 0.0, -math.inf, -math.inf
    for gap, latency in events:
        now += gap
        before = aimd.limit
        if latency is None:
            aimd.on_pushback(now)
            last_pushback = now
            if aimd.limit != before:
                assert aimd.limit == max(minimum, math.floor(before * backoff + 1e-9))
                assert now - last_decrease >= cooldown
                last_decrease = now
            else:
                assert before == minimum or now - last_decrease < max(cooldown, aimd.latency or 0)
        else:
            aimd.on_success(latency, now)
            assert aimd.limit in (before, before + 1)
            if aimd.limit > before:
                assert now - last_pushback >= quiet
                assert latency <= target
        assert minimum <= aimd.limit <= 64
