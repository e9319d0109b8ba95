"""The bucketed sliding window under the breaker and the retry budget."""

from __future__ import annotations

import pytest

from crawlmesh._resilience._window import SlidingCounts


def test_counts_add_up_within_the_window() -> None:
    counts = SlidingCounts(10.0)
    counts.add(0.5, requests=1)
    counts.add(3.2, requests=2, flagged=1)
    counts.add(9.9, flagged=4)
    assert (counts.requests, counts.flagged) == (3, 5)


def test_a_bucket_is_forgotten_exactly_one_window_after_it_starts() -> None:
    # Buckets are 1 s wide: an event at 0.5 lives in [0, 1) and is dropped
    # when the window reaches [10, 11).
    counts = SlidingCounts(10.0)
    counts.add(0.5, requests=1, flagged=1)
    counts.add(1.5, requests=1)
    counts.advance(9.999)
    assert counts.requests == 2
    counts.advance(10.0)
    assert (counts.requests, counts.flagged) == (1, 0)
    counts.advance(11.0)
    assert counts.requests == 0


def test_a_gap_longer_than_the_window_clears_everything() -> None:
    counts = SlidingCounts(10.0)
    for t in range(10):
        counts.add(t + 0.5, requests=1, flagged=1)
    counts.add(1000.0, requests=1)
    assert (counts.requests, counts.flagged) == (1, 0)


def test_time_going_backwards_counts_in_the_newest_bucket() -> None:
    counts = SlidingCounts(10.0)
    counts.add(5.0, requests=1)
    counts.add(2.0, requests=1)  # late report: must not resurrect bucket 2
    counts.advance(14.999)
    assert counts.requests == 2
    counts.advance(15.0)
    assert counts.requests == 0


def test_reset_forgets_counts_but_not_time() -> None:
    counts = SlidingCounts(10.0)
    counts.add(5.0, requests=3, flagged=2)
    counts.reset()
    assert (counts.requests, counts.flagged) == (0, 0)
    counts.add(5.5, requests=1)
    counts.advance(14.999)
    assert counts.requests == 1


@pytest.mark.parametrize(("window", "buckets"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_bad_shapes_are_refused(window: float, buckets: int) -> None:
    with pytest.raises(ValueError, match="window > 0"):
        SlidingCounts(window, buckets)
