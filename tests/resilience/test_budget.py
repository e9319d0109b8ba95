"""The retry budget: arithmetic, a timestamp oracle, and a dead target."""

from __future__ import annotations

import math
import random

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlmesh._resilience import RetryBudget, RetryPolicy


def test_ratio_of_requests() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries_per_s=0.0)
    assert not budget.try_spend(0.0)  # no requests, no floor: nothing
    for _ in range(10):
        budget.record_request(0.0)
    assert budget.available(0.0) == 2
    assert budget.try_spend(0.1)
    assert budget.try_spend(0.2)
    assert not budget.try_spend(0.3)
    stats = budget.statistics(0.3)
    assert (stats.requests, stats.retries, stats.spent, stats.refused) == (10, 2, 2, 2)


def test_the_floor_lets_a_quiet_crawl_retry() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries_per_s=0.5)
    assert [budget.try_spend(float(t)) for t in range(6)] == [True] * 5 + [False]


def test_spent_retries_slide_out_with_the_window() -> None:
    budget = RetryBudget(ratio=0.5, window=10.0, min_retries_per_s=0.0)
    budget.record_request(0.5)
    budget.record_request(0.5)
    assert budget.try_spend(0.5)
    assert not budget.try_spend(9.9)
    # At 10.0 bucket [0, 1) leaves: its requests and its retry with it.
    assert budget.available(10.0) == 0
    budget.record_request(10.0)
    budget.record_request(10.0)
    assert budget.try_spend(10.0)


def test_policy_makes_its_budget() -> None:
    policy = RetryPolicy(budget_ratio=0.5, budget_window=4.0, budget_min_retries_per_s=0.0)
    budget = policy.new_budget()
    for _ in range(4):
        budget.record_request(0.0)
    assert budget.available(0.0) == 2
    assert budget.available(4.0) == 0  # a 4 s window, not the default 10


events = st.lists(
    st.tuples(st.sampled_from(["request", "retry"]), st.floats(0.0, 3.0)),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(events, st.sampled_from([0.0, 0.1, 0.2, 1.0]), st.sampled_from([0.0, 0.3, 1.0]))
def test_no_window_ever_holds_more_retries_than_allowed(
    steps: list[tuple[str, float]], ratio: float, floor: float
) -> None:
    # An oracle from raw timestamps, independent of the buckets: at every
    # spend, the retries in its window (the 10 one-second buckets ending
    # with the current one) stay within ratio * requests + floor * window.
    window = 10.0
    budget = RetryBudget(ratio, window, floor)
    requests: list[float] = []
    retries: list[float] = []
    now = 0.0
    for kind, gap in steps:
        now += gap
        if kind == "request":
            budget.record_request(now)
            requests.append(now)
        elif budget.try_spend(now):
            retries.append(now)
            start = math.floor(now) - 9
            in_window = sum(t >= start for t in retries)
            assert in_window <= ratio * sum(t >= start for t in requests) + floor * window


async def test_a_dead_target_gets_at_most_1_2_times_its_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 50 requests a second for 60 s to a target that fails every attempt.
    # Ten attempts per request would send 10x the load; the budget holds it
    # to 1.2x plus the floor (1 retry/s) for each window the retries span.
    policy = RetryPolicy(max_attempts=10)
    budget = policy.new_budget()
    rng = random.Random(5)
    attempts = 0
    retry_times: list[float] = []

    async def request() -> None:
        nonlocal attempts
        budget.record_request()
        attempt = 1
        while True:
            attempts += 1
            if not (
                policy.should_retry("GET", attempt, kind="connect_error") and budget.try_spend()
            ):
                return
            retry_times.append(trio.current_time())
            await trio.sleep(policy.backoff(attempt, rng))
            attempt += 1

    n = 3000
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(request)
            await trio.sleep(0.02)
    assert trio.current_time() - start < 100  # nothing waited for ever

    span = retry_times[-1] - retry_times[0]
    windows = 1 + span / (0.9 * policy.budget_window)
    floor = policy.budget_min_retries_per_s * policy.budget_window
    assert attempts <= n * (1 + policy.budget_ratio) + floor * windows
    # And the budget was spent, not refused wholesale: ~1.2x did happen.
    assert attempts >= n * (1 + policy.budget_ratio) * 0.95
    assert budget.statistics().refused > 0


def test_a_quiet_dead_target_still_gets_every_retry() -> None:
    # One request a minute: 20% of nothing is nothing, the floor pays.
    policy = RetryPolicy(max_attempts=3)
    budget = policy.new_budget()
    attempts = 0
    for minute in range(10):
        now = minute * 60.0
        budget.record_request(now)
        attempt = 1
        while True:
            attempts += 1
            if not (policy.should_retry("GET", attempt, status=503) and budget.try_spend(now)):
                break
            now += 1.0
            attempt += 1
    assert attempts == 30
