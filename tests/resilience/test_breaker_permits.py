"""Breaker permits: the half-open probe bound, release, cancellation, staleness."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from resilience.breaker_helpers import make, probes, trip


def test_half_open_admits_a_bounded_number_of_probes() -> None:
    breaker, _ = make(half_open_probes=3, half_open_successes=3)
    trip(breaker, 0.0)
    permits = probes(breaker, 5.0, 3)
    assert breaker.try_acquire(5.0) is None
    assert not breaker.allow(5.0)
    assert breaker.next_admit_at(5.0) == math.inf
    breaker.record(permits[0], True, 6.0)
    assert breaker.allow(6.0)  # a slot came back, and allow() reserved nothing
    assert breaker.allow(6.0)
    assert breaker.try_acquire(6.0) is not None
    assert breaker.try_acquire(6.0) is None


def test_a_released_probe_frees_its_slot_without_counting() -> None:
    breaker, _ = make()
    trip(breaker, 0.0)
    first, second = probes(breaker, 5.0, 2)
    first.release()
    assert first.done
    third = breaker.try_acquire(5.0)
    assert third is not None
    breaker.record(second, True, 5.1)
    breaker.record(third, True, 5.2)
    # Two successes were needed and two came: the released one did not count.
    assert breaker.statistics(5.2).state == "closed"


def test_a_permit_context_releases_on_error() -> None:
    breaker, _ = make(half_open_probes=1, half_open_successes=1)
    trip(breaker, 0.0)
    permit = breaker.try_acquire(5.0)
    assert permit is not None
    with pytest.raises(OSError, match="reset"), permit:
        raise OSError("reset")
    assert breaker.in_flight == 0
    assert breaker.try_acquire(5.0) is not None


def test_a_recorded_permit_context_exits_quietly() -> None:
    breaker, _ = make()
    permit = breaker.try_acquire(0.0)
    assert permit is not None
    with permit:
        breaker.record(permit, False, 0.0)
    assert breaker.statistics(0.0).failures == 1
    assert breaker.in_flight == 0


async def test_a_cancelled_probe_gives_its_slot_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker, _ = make(half_open_probes=1, half_open_successes=1)
    trip(breaker, trio.current_time())

    async def probe(task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep_until(breaker.next_admit_at())
        permit = breaker.try_acquire()
        assert permit is not None
        task_status.started()
        with permit:
            await trio.sleep(1000)  # a hung request

    async with trio.open_nursery() as nursery:
        await nursery.start(probe)
        assert breaker.try_acquire() is None
        nursery.cancel_scope.cancel()
    assert breaker.statistics().probes == 0
    assert breaker.try_acquire() is not None


async def test_waiting_for_next_admit_at_wakes_exactly_at_half_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker, seen = make()
    start = trio.current_time()
    trip(breaker, start)
    await trio.sleep_until(breaker.next_admit_at())
    assert trio.current_time() == start + 5.0
    assert breaker.state() == "half-open"
    assert seen[-1].at == start + 5.0


def test_outcomes_of_requests_admitted_before_a_trip_are_ignored() -> None:
    breaker, _ = make()
    late_ok = breaker.try_acquire(0.0)
    late_bad = breaker.try_acquire(0.0)
    assert late_ok is not None
    assert late_bad is not None
    trip(breaker, 1.0)
    assert breaker.state(6.0) == "half-open"
    breaker.record(late_bad, False, 6.0)  # must not re-open
    breaker.record(late_ok, True, 6.0)  # must not count as a probe
    assert breaker.state(6.0) == "half-open"
    assert breaker.statistics(6.0).in_flight == 0
    [probe] = probes(breaker, 6.0, 1)
    breaker.record(probe, True, 6.1)
    assert breaker.state(6.1) == "half-open"  # one real success of two


def test_probes_from_an_earlier_half_open_keep_their_slots() -> None:
    breaker, _ = make(half_open_probes=2)
    trip(breaker, 0.0)
    hung, failing = probes(breaker, 5.0, 2)
    breaker.record(failing, False, 5.0)  # open again until 15
    # The hung probe still holds a slot: only one new probe at a time.
    assert breaker.try_acquire(15.0) is not None
    assert breaker.try_acquire(15.0) is None
    assert breaker.statistics(15.0).probes == 2
    breaker.record(hung, True, 15.0)  # stale: frees the slot, counts nothing
    assert breaker.statistics(15.0).probes == 1
    assert breaker.state(15.0) == "half-open"


def test_fewer_successes_than_probes_close_early_and_ignore_the_rest() -> None:
    breaker, _ = make(half_open_probes=3, half_open_successes=1)
    trip(breaker, 0.0)
    first, second, third = probes(breaker, 5.0, 3)
    breaker.record(first, True, 5.0)
    assert breaker.state(5.0) == "closed"
    breaker.record(second, False, 5.1)  # admitted while half-open: ignored
    assert breaker.statistics(5.1).failures == 0
    third.release()
    assert breaker.in_flight == 0


def test_outcomes_without_a_permit_count_only_while_closed() -> None:
    breaker, _ = make()
    breaker.record(None, False, 0.0)
    breaker.record(None, False, 0.0)
    breaker.record(None, False, 0.0)
    assert breaker.state(0.0) == "open"
    breaker.record(None, True, 5.0)
    breaker.record(None, True, 5.0)
    assert breaker.state(5.0) == "half-open"
    breaker.record(None, False, 5.0)
    assert breaker.state(5.0) == "half-open"


def test_a_permit_is_used_once_and_only_by_its_breaker() -> None:
    breaker, _ = make()
    other, _ = make()
    permit = breaker.try_acquire(0.0)
    assert permit is not None
    with pytest.raises(ValueError, match="another breaker"):
        other.record(permit, True, 0.0)
    with pytest.raises(ValueError, match="another breaker"):
        other.release(permit)
    breaker.record(permit, True, 0.0)
    with pytest.raises(RuntimeError, match="already"):
        breaker.record(permit, True, 0.0)
    permit.release()  # after a record: nothing to do
    assert breaker.in_flight == 0


def test_next_admit_at_in_each_state() -> None:
    breaker, _ = make(half_open_probes=1)
    assert breaker.next_admit_at(1.0) == 1.0
    trip(breaker, 2.0)
    assert breaker.next_admit_at(3.0) == 7.0
    assert breaker.next_admit_at(7.5) == 7.5
    assert breaker.try_acquire(7.5) is not None
    assert breaker.next_admit_at(7.5) == math.inf
