"""Per-domain slots and delays, in virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from crawlmesh._shaping import Politeness


async def test_concurrency_slots(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=2)
    assert p.ready("a")
    p.acquire("a")
    p.acquire("a")
    assert not p.ready("a")
    assert p.ready("b")
    p.release("a")
    assert p.ready("a")


async def test_delay_spaces_request_starts(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8)
    p.set_delay("a", 5.0)
    p.acquire("a")
    p.release("a")
    p.wake_at = float("inf")
    assert not p.ready("a")
    assert p.wake_at == pytest.approx(trio.current_time() + 5.0)
    await trio.sleep(4.9)
    assert not p.ready("a")
    await trio.sleep(0.1)
    assert p.ready("a")


async def test_crawl_delay_means_one_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8)
    p.set_delay("a", 1.0)
    p.acquire("a")
    await trio.sleep(2)
    assert not p.ready("a"), "a Crawl-delay domain gets one request in flight"


async def test_hold_until_robots_known(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=4)
    p.hold("a")
    p.acquire("a")
    assert not p.ready("a")
    p.unhold("a")
    assert p.ready("a")


class TickingClock(trio.abc.Clock):
    """A real clock's one property that virtual time lacks: every reading is
    later than the one before."""

    def __init__(self) -> None:
        self._now = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        self._now += 1e-6
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return max(0.0, deadline - self.current_time())


@pytest.fixture
def ticking_clock() -> TickingClock:
    return TickingClock()


async def test_a_gate_that_says_now_lets_a_domain_with_a_slot_through(
    ticking_clock: TickingClock,
) -> None:
    # The balancer's gate answers "now" (its own reading) while any breaker
    # is not closed; a domain with a slot (here, a past Retry-After pause)
    # must still be ready, not wait for a "now" that is always ahead.
    p = Politeness(concurrency=8, gate=lambda domain: trio.current_time())
    p.pause("a", trio.current_time())
    assert p.ready("a")
    assert p.ready("b")  # (no slot)
