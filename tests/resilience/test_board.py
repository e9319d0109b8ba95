"""BreakerBoard: breakers by key, transitions reported, idle ones forgotten."""

from __future__ import annotations

import trio
import trio.testing

from crawlmesh._resilience import BreakerBoard, BreakerConfig, Transition

CONFIG = BreakerConfig(window=10.0, consecutive_failures=2, cooldown=5.0, cooldown_max=20.0)


def fail(board: BreakerBoard[str], key: str, now: float) -> None:
    breaker = board.get(key, now)
    permit = breaker.try_acquire(now)
    assert permit is not None
    breaker.record(permit, False, now)


def test_one_breaker_per_key_and_transitions_carry_it() -> None:
    seen: list[Transition] = []
    board: BreakerBoard[tuple[str, str]] = BreakerBoard(CONFIG, on_transition=seen.append)
    key = ("proxy-1", "example.com")
    breaker = board.get(key, 0.0)
    assert board.get(key, 0.1) is breaker
    assert board.get(("proxy-1", "example.org"), 0.2) is not breaker
    for now in (1.0, 2.0):
        permit = breaker.try_acquire(now)
        assert permit is not None
        breaker.record(permit, False, now)
    assert [(t.key, t.new) for t in seen] == [(key, "open")]
    assert board.peek(("proxy-2", "example.com")) is None
    assert ("proxy-2", "example.com") not in board
    stats = board.statistics(3.0)
    assert (stats.breakers, stats.open, stats.half_open, stats.trips) == (2, 1, 0, 1)


def test_a_closed_idle_breaker_is_forgotten_after_a_window() -> None:
    board: BreakerBoard[str] = BreakerBoard(CONFIG)
    fail(board, "a", 0.0)  # one failure of the two that would trip it
    board.get("b", 9.9)
    assert "a" in board
    board.get("b", 10.0)
    assert "a" not in board
    assert board.statistics(10.0).forgotten == 1
    # The fresh one knows nothing of the old failure; nor would the old one
    # have (a run with a window-long gap starts over).
    fail(board, "a", 10.0)
    assert board.get("a", 10.0).state(10.0) == "closed"


def test_a_breaker_with_a_permit_in_flight_is_kept() -> None:
    board: BreakerBoard[str] = BreakerBoard(CONFIG)
    held = board.get("a", 0.0).try_acquire(0.0)
    assert held is not None
    for t in range(10, 100, 10):
        board.get(f"other-{t}", float(t))
    board.sweep(100.0)
    assert list(board) == ["a"]  # idle for 100 s, but its request is running
    assert board.peek("a") is held.breaker
    held.breaker.record(held, False, 100.0)  # the outcome reached the live breaker
    assert held.breaker.statistics(100.0).failures == 1


def test_an_open_breaker_is_kept_until_open_ttl() -> None:
    board: BreakerBoard[str] = BreakerBoard(CONFIG)  # open_ttl = 10 + 20
    fail(board, "dead", 0.0)
    fail(board, "dead", 0.0)
    assert board.get("dead", 0.0).state(0.0) == "open"
    assert board.sweep(29.9) == 0
    assert board.sweep(30.0) == 1
    assert board.statistics(30.0).trips == 1  # counted even when forgotten


def test_memory_stays_bounded_across_many_keys() -> None:
    # 20,000 domains, 100 new ones a second, each used for one request:
    # only those of the last window (10 s: 1,000) may be held.
    board: BreakerBoard[str] = BreakerBoard(CONFIG)
    largest = 0
    for i in range(20_000):
        now = i / 100
        breaker = board.get(f"domain-{i}", now)
        permit = breaker.try_acquire(now)
        assert permit is not None
        breaker.record(permit, True, now)
        largest = max(largest, len(board))
    assert 1_000 <= largest <= 1_002
    assert board.statistics(200.0).forgotten >= 19_000


def test_custom_ttls() -> None:
    board: BreakerBoard[str] = BreakerBoard(CONFIG, idle_ttl=50.0, open_ttl=100.0)
    board.get("a", 0.0)
    assert board.sweep(49.0) == 0
    assert board.sweep(50.0) == 1


async def test_defaults_to_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    board: BreakerBoard[str] = BreakerBoard(CONFIG)
    board.get("a")
    await trio.sleep(10)
    board.get("b")
    assert list(board) == ["b"]
