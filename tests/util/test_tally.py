"""The request-path counters behind the metrics: histogram arithmetic, the
bounded domain labels, per-node tallies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._util._tally import (
    DURATION_BUCKETS,
    OTHER,
    DomainLabels,
    DurationHistogram,
    NodeTally,
    RateWaits,
)

durations = st.floats(min_value=0, max_value=500, allow_nan=False)


@given(st.lists(durations | st.sampled_from(DURATION_BUCKETS), max_size=200))
def test_buckets_are_cumulative_counts_at_or_below_each_bound(values: list[float]) -> None:
    h = DurationHistogram()
    for v in values:
        h.observe(v)
    buckets = h.buckets()
    assert [bound for bound, _ in buckets] == [*DURATION_BUCKETS, math.inf]
    # Prometheus' le is "<=": a value equal to a bound is in that bound's bucket.
    assert [n for _, n in buckets] == [sum(v <= bound for v in values) for bound, _ in buckets]
    assert h.count == len(values) == buckets[-1][1]
    assert h.sum == pytest.approx(math.fsum(values))


def test_a_value_on_a_bound_is_in_that_bucket() -> None:
    h = DurationHistogram((0.1, 1.0))
    h.observe(0.1)
    h.observe(0.10000001)
    h.observe(5.0)
    assert h.buckets() == [(0.1, 1), (1.0, 2), (math.inf, 3)]


@pytest.mark.parametrize("bounds", [(1.0, 0.5), (0.5, 0.5)])
def test_bounds_must_ascend(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ascend"):
        DurationHistogram(bounds)


def test_a_host_gets_its_label_at_its_tenth_request_and_keeps_it() -> None:
    labels = DomainLabels(2)
    assert [labels.label("a") for _ in range(9)] == [OTHER] * 9
    assert labels.label("a") == "a"
    assert labels.label("a") == "a"
    assert labels.labelled == {"a"}


def test_only_the_first_hosts_to_get_there_get_a_label() -> None:
    labels = DomainLabels(2, promote_after=3)
    seen = [labels.label(host) for host in ["a", "b", "c"] * 5]
    # a, b and c take turns: a and b get there first (third round).
    assert seen[:6] == [OTHER] * 6
    assert seen[6:8] == ["a", "b"]
    assert set(seen[8:]) == {"a", "b", OTHER}
    assert labels.labelled == {"a", "b"}
    assert labels.label("c") == OTHER  # however busy it is now
    assert labels.label("new") == OTHER


def test_no_labels_at_all() -> None:
    labels = DomainLabels(0, promote_after=1)
    assert {labels.label(h) for h in "abc"} == {OTHER}
    assert labels.labelled == frozenset()


def test_labels_after_one_request() -> None:
    labels = DomainLabels(2, promote_after=1)
    assert [labels.label(h) for h in "abcab"] == ["a", "b", OTHER, "a", "b"]


@given(st.lists(st.sampled_from("abcdefgh"), max_size=300), st.integers(0, 4), st.integers(1, 5))
def test_labels_are_bounded_and_never_taken_back(hosts: list[str], limit: int, after: int) -> None:
    labels = DomainLabels(limit, promote_after=after)
    given_to: dict[str, int] = {}
    for i, host in enumerate(hosts):
        label = labels.label(host)
        assert label in (host, OTHER)
        if label == host:
            given_to.setdefault(host, i)
        # Once a host has its label, every later request of it has it too.
        assert host not in given_to or label == host
    assert len(given_to) <= limit
    assert set(given_to) == labels.labelled
    for host, first in given_to.items():
        assert hosts[: first + 1].count(host) == after


def test_a_node_tally_counts_by_domain_label_and_status_class() -> None:
    tally = NodeTally()
    for label, status in [("a", 200), ("a", 204), ("a", 404), ("b", 503), ("a", None)]:
        tally.record(label, status, 0.05)
    tally.record(OTHER, 301, 0.002)
    tally.record(OTHER, 1234, 0.002)  # (no such status; counted somewhere)
    assert tally.outcomes() == [
        ("a", "2xx", 2),
        ("a", "4xx", 1),
        ("a", "error", 1),
        ("b", "5xx", 1),
        ("other", "3xx", 1),
        ("other", "9xx", 1),
    ]
    assert tally.duration.count == 7
    assert tally.duration.sum == pytest.approx(5 * 0.05 + 2 * 0.002)
    assert tally.duration.buckets()[0] == (0.005, 2)


def test_rate_waits_start_at_zero_for_every_reason() -> None:
    waits = RateWaits()
    assert waits.count == {"delay": 0, "pause": 0, "rate": 0, "node_rate": 0, "shared": 0}
    waits.add("rate", 0.25)
    waits.add("rate", 0.5)
    assert waits.count["rate"] == 2
    assert waits.seconds["rate"] == 0.75
    with pytest.raises(KeyError):
        waits.add("made_up", 1.0)  # a typo in a reason fails, not a new series
