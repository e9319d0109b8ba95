"""Retry decisions, full-jitter backoff, Retry-After."""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._resilience import RetryPolicy

POLICY = RetryPolicy()


@pytest.mark.parametrize(
    ("method", "attempt", "status", "kind", "expected"),
    [
        ("GET", 1, 503, None, True),
        ("get", 1, 503, None, True),
        ("GET", 2, 429, None, True),
        ("GET", 3, 503, None, False),  # the third attempt was the last
        ("GET", 1, 404, None, False),
        ("GET", 1, 501, None, False),
        ("GET", 1, 408, None, True),
        ("GET", 1, None, "read_timeout", True),
        ("GET", 1, None, "connect_error", True),
        ("GET", 1, None, "total_timeout", True),
        ("GET", 1, None, "too_large", False),
        ("GET", 1, None, "redirect_loop", False),
        ("GET", 1, None, None, False),
        ("HEAD", 1, 502, None, True),
        ("OPTIONS", 1, 502, None, True),
        ("PUT", 1, 502, None, True),
        ("DELETE", 1, 502, None, True),
        ("TRACE", 1, 502, None, True),
        ("POST", 1, 503, None, False),
        ("PATCH", 1, None, "read_timeout", False),
        ("post", 1, None, "connect_error", False),
    ],
)
def test_should_retry(
    method: str, attempt: int, status: int | None, kind: str | None, expected: bool
) -> None:
    assert POLICY.should_retry(method, attempt, status=status, kind=kind) is expected


def test_non_idempotent_methods_when_asked() -> None:
    policy = RetryPolicy(retry_non_idempotent=True)
    assert policy.should_retry("POST", 1, status=503)
    assert not policy.should_retry("POST", 1, status=404)


def test_max_attempts_one_disables_retries() -> None:
    assert not RetryPolicy(max_attempts=1).should_retry("GET", 1, status=503)


def test_configured_statuses_and_kinds_replace_the_defaults() -> None:
    policy = msgspec.convert({"retry_statuses": [404], "retry_kinds": ["too_large"]}, RetryPolicy)
    assert policy.should_retry("GET", 1, status=404)
    assert not policy.should_retry("GET", 1, status=503)
    assert policy.should_retry("GET", 1, kind="too_large")
    assert not policy.should_retry("GET", 1, kind="read_timeout")


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        POLICY.should_retry("GET", 0, status=503)
    with pytest.raises(ValueError, match="from 1"):
        POLICY.backoff(0)


@given(st.integers(1, 200), st.integers(0, 2**32))
def test_backoff_stays_within_the_full_jitter_range(attempt: int, seed: int) -> None:
    delay = POLICY.backoff(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (attempt - 1))


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (4, 4.0), (7, 30.0)])
def test_backoff_spreads_over_the_whole_range(attempt: int, ceiling: float) -> None:
    # Full jitter, not "equal jitter" (ceiling/2 + up to ceiling/2): waits
    # near zero must happen, as must waits near the ceiling.
    rng = random.Random(7)
    delays = [POLICY.backoff(attempt, rng) for _ in range(2000)]
    assert min(delays) < 0.01 * ceiling
    assert max(delays) > 0.99 * ceiling
    assert max(delays) <= ceiling
    assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.05)


def test_a_longer_retry_after_wins() -> None:
    rng = random.Random(1)
    assert POLICY.backoff(1, rng, retry_after=12.0) == 12.0
    assert POLICY.backoff(9, rng, retry_after=120.0) == 120.0  # past backoff_max too


def test_a_shorter_retry_after_leaves_the_backoff() -> None:
    delay = POLICY.backoff(5, random.Random(3), retry_after=0.001)
    assert delay == random.Random(3).uniform(0.0, 8.0)


@pytest.mark.parametrize("junk", [-5.0, math.nan])
def test_a_meaningless_retry_after_is_ignored(junk: float) -> None:
    delay = POLICY.backoff(1, random.Random(3), retry_after=junk)
    assert delay == random.Random(3).uniform(0.0, 0.5)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert 0.0 <= POLICY.backoff(100_000, random.Random(0)) <= 30.0


def test_zero_base_means_no_wait() -> None:
    assert RetryPolicy(backoff_base=0.0).backoff(5, random.Random(0)) == 0.0


def test_default_policy_matches_the_documented_values() -> None:
    assert msgspec.to_builtins(POLICY, order="sorted") == {
        "backoff_base": 0.5,
        "backoff_max": 30.0,
        "budget_min_retries_per_s": 1.0,
        "budget_ratio": 0.2,
        "budget_window": 10.0,
        "max_attempts": 3,
        "node_pushback_timeout": 300.0,
        "retry_kinds": sorted(
            [
                "banned",
                "connect_error",
                "connect_timeout",
                "read_timeout",
                "connection_error",
                "total_timeout",
            ]
        ),
        "retry_non_idempotent": False,
        "retry_statuses": [408, 429, 500, 502, 503, 504],
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"budget_ratio": -0.1}, "budget_ratio"),
        ({"retry_statuses": ["503"]}, "retry_statuses"),
        ({"retries": 3}, "retries"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, RetryPolicy)
