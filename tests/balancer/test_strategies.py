"""Selection strategies: exact sequences, proportions, and latency learning."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import NodeSpec
from crawlmesh._balancer import (
    STRATEGIES,
    LeastConn,
    NodeState,
    PeakEwmaP2C,
    RoundRobin,
    SmoothWeighted,
    make_strategy,
)

weight_lists = st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8)


def make_nodes(*weights: float) -> list[NodeState]:
    """Nodes a, b, c, ... (then n26, n27, ...) with these weights."""
    return [
        NodeState(NodeSpec(name=chr(ord("a") + i) if i < 26 else f"n{i}", weight=w), i)
        for i, w in enumerate(weights)
    ]


def names(picks: list[NodeState]) -> str:
    return " ".join(node.name for node in picks)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# --- make_strategy ---------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
def test_make_strategy_by_name(name: str) -> None:
    assert make_strategy(name, now=FakeClock()).name == name


def test_default_is_p2c_ewma() -> None:
    assert STRATEGIES[0] == "p2c-ewma"


def test_unknown_strategy_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'fastest'") as info:
        make_strategy("fastest")
    for name in STRATEGIES:
        assert name in str(info.value)


# --- round-robin -----------------------------------------------------------------


@given(n=st.integers(min_value=1, max_value=20), rounds=st.integers(min_value=1, max_value=5))
def test_round_robin_is_fair(n: int, rounds: int) -> None:
    nodes = make_nodes(*[1.0] * n)
    strategy = RoundRobin()
    picks = [strategy.pick(nodes, "d") for _ in range(n * rounds)]
    assert picks[:n] == nodes  # in list order
    assert Counter(node.index for node in picks) == {node.index: rounds for node in nodes}


def test_round_robin_survives_a_changing_list() -> None:
    a, b, c = make_nodes(1, 1, 1)
    strategy = RoundRobin()
    assert names([strategy.pick([a, b, c], "d") for _ in range(2)]) == "a b"
    # c ejected: the counter is taken modulo the new length, never out of range.
    assert sorted(names([strategy.pick([a, b], "d") for _ in range(4)]).split()) == [
        "a",
        "a",
        "b",
        "b",
    ]


# --- weighted (smooth weighted round-robin) --------------------------------------


def test_weighted_interleaves_as_nginx() -> None:
    nodes = make_nodes(5, 1, 1)
    strategy = SmoothWeighted()
    picks = [strategy.pick(nodes, "d") for _ in range(14)]
    assert names(picks) == "a a b a c a a a a b a c a a"


def test_weighted_heaviest_may_repeat_across_cycles() -> None:
    # Weight 3 of 7 is below half, yet c is picked twice in a row where one
    # cycle ends and the next begins: "below half" is not enough.
    nodes = make_nodes(2, 2, 3)
    strategy = SmoothWeighted()
    assert names([strategy.pick(nodes, "d") for _ in range(8)]) == "c a b c a b c c"


@given(weights=weight_lists)
def test_weighted_exact_shares_in_every_window(weights: list[int]) -> None:
    nodes = make_nodes(*weights)
    strategy = SmoothWeighted()
    total = sum(weights)
    picks = [strategy.pick(nodes, "d").index for _ in range(3 * total)]
    # Every window of one whole cycle, wherever it starts, not just from zero.
    for start in range(2 * total + 1):
        counts = Counter(picks[start : start + total])
        assert [counts[i] for i in range(len(weights))] == weights


@given(weights=weight_lists)
def test_weighted_never_a_whole_pick_ahead(weights: list[int]) -> None:
    nodes = make_nodes(*weights)
    strategy = SmoothWeighted()
    total = sum(weights)
    counts = [0] * len(weights)
    for t in range(1, 2 * total + 1):
        counts[strategy.pick(nodes, "d").index] += 1
        for i, w in enumerate(weights):
            # counts[i] < t * w / total + 1, in integers.
            assert counts[i] * total < t * w + total


@given(weights=st.lists(st.integers(min_value=1, max_value=20), min_size=2, max_size=8))
def test_weighted_only_the_strictly_heaviest_repeats(weights: list[int]) -> None:
    nodes = make_nodes(*weights)
    strategy = SmoothWeighted()
    picks = [strategy.pick(nodes, "d").index for _ in range(3 * sum(weights))]
    for prev, cur in itertools.pairwise(picks):
        if prev == cur:
            others = weights[:cur] + weights[cur + 1 :]
            assert weights[cur] > max(others)


def test_weighted_two_nodes_at_most_half_never_repeat() -> None:
    # The special case that does hold: with two candidates, the lighter-or-equal
    # one (weight <= half the total) is never picked twice in a row.
    for wa, wb in itertools.product(range(1, 13), repeat=2):
        strategy = SmoothWeighted()
        picks = [strategy.pick(make_nodes(wa, wb), "d").index for _ in range(3 * (wa + wb))]
        light = 0 if wa <= wb else 1
        assert (light, light) not in set(itertools.pairwise(picks)), (wa, wb)


def test_weighted_uses_effective_weight() -> None:
    a, b = make_nodes(4, 1)
    a.effective_weight = 1.0  # slow start: a is worth 1 for now, not 4
    strategy = SmoothWeighted()
    assert names([strategy.pick([a, b], "d") for _ in range(4)]) == "a b a b"


def test_weighted_forget_resets_the_score() -> None:
    b, a = make_nodes(1, 3)
    strategy = SmoothWeighted()
    assert strategy.pick([b, a], "d") is a  # a's score is now 3 - 4 = -1
    strategy.forget(a)  # back to 0: next round a has 3 against b's 2
    assert strategy.pick([b, a], "d") is a
    # Without the reset a would have 2, tying b's 2, and b (first) would win.
    fresh = SmoothWeighted()
    fresh.pick([b, a], "d")
    assert fresh.pick([b, a], "d") is b


# --- least-conn ------------------------------------------------------------------


def test_least_conn_picks_least_loaded() -> None:
    nodes = make_nodes(1, 1, 1)
    for node, in_flight in zip(nodes, [3, 0, 2], strict=True):
        node.in_flight = in_flight
    strategy = LeastConn()
    assert {strategy.pick(nodes, "d").name for _ in range(6)} == {"b"}


def test_least_conn_divides_by_weight() -> None:
    a, b = make_nodes(4, 1)
    a.in_flight = 2  # (2 + 1) / 4 = 0.75 beats b's (0 + 1) / 1 = 1
    strategy = LeastConn()
    assert {strategy.pick([a, b], "d").name for _ in range(4)} == {"a"}
    a.effective_weight = 2.0  # slow start: (2 + 1) / 2 = 1.5 now loses
    assert {strategy.pick([a, b], "d").name for _ in range(4)} == {"b"}


@given(
    loads=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 8)), min_size=1, max_size=12),
    turn=st.integers(0, 30),
)
def test_least_conn_minimises_the_score(loads: list[tuple[int, int]], turn: int) -> None:
    nodes = make_nodes(*[w for _, w in loads])
    for node, (in_flight, _) in zip(nodes, loads, strict=True):
        node.in_flight = in_flight
    strategy = LeastConn()
    for _ in range(turn):
        strategy.pick(nodes, "d")
    chosen = strategy.pick(nodes, "d")
    best = min((n.in_flight + 1) / n.effective_weight for n in nodes)
    assert (chosen.in_flight + 1) / chosen.effective_weight == best


def test_least_conn_rotates_ties() -> None:
    nodes = make_nodes(1, 1, 1)
    strategy = LeastConn()
    assert names([strategy.pick(nodes, "d") for _ in range(6)]) == "a b c a b c"


# --- p2c-ewma --------------------------------------------------------------------


def make_p2c(clock: FakeClock, **kwargs: Any) -> PeakEwmaP2C:
    return PeakEwmaP2C(rng=random.Random(7), now=clock, **kwargs)


def test_p2c_prefers_the_faster_node_per_domain() -> None:
    clock = FakeClock()
    strategy = make_p2c(clock)
    a, b = make_nodes(1, 1)
    strategy.observe(a, "shop.example", 0.05)
    strategy.observe(b, "shop.example", 0.5)
    strategy.observe(a, "news.example", 0.5)  # a is throttled by news
    strategy.observe(b, "news.example", 0.05)
    assert {strategy.pick([a, b], "shop.example").name for _ in range(50)} == {"a"}
    # b stays in use where it is the fast one.
    assert {strategy.pick([a, b], "news.example").name for _ in range(50)} == {"b"}


@given(n=st.integers(2, 40), slow=st.integers(0, 39), seed=st.integers(0, 2**32))
def test_p2c_draws_two_distinct_candidates(n: int, slow: int, seed: int) -> None:
    # The slowest node can only win a draw against itself.
    clock = FakeClock()
    strategy = PeakEwmaP2C(rng=random.Random(seed), now=clock)
    nodes = make_nodes(*[1.0] * n)
    for node in nodes:
        strategy.observe(node, "d", 9.0 if node.index == slow % n else 0.1)
    assert all(strategy.pick(nodes, "d").index != slow % n for _ in range(4 * n))


def test_p2c_spreads_over_equal_nodes() -> None:
    strategy = make_p2c(FakeClock())
    nodes = make_nodes(1, 1, 1, 1)
    counts = Counter(strategy.pick(nodes, "d").name for _ in range(4000))
    assert set(counts) == {"a", "b", "c", "d"}
    assert all(700 < count < 1300 for count in counts.values())


def test_p2c_single_candidate() -> None:
    strategy = make_p2c(FakeClock())
    (a,) = make_nodes(1)
    assert strategy.pick([a], "d") is a


def test_p2c_cost_counts_in_flight_and_weight() -> None:
    strategy = make_p2c(FakeClock())
    a, b = make_nodes(1, 1)
    strategy.observe(a, "d", 0.1)
    strategy.observe(b, "d", 0.3)
    a.in_flight = 5  # 0.1 * 6 = 0.6 against b's 0.3
    assert {strategy.pick([a, b], "d").name for _ in range(20)} == {"b"}
    a.effective_weight = 4.0  # 0.6 / 4 = 0.15 against 0.3
    assert {strategy.pick([a, b], "d").name for _ in range(20)} == {"a"}


def test_p2c_penalty_shifts_traffic_for_that_domain_only() -> None:
    clock = FakeClock()
    strategy = make_p2c(clock)
    a, b = make_nodes(1, 1)
    strategy.observe(a, "d", 0.1)
    strategy.observe(b, "d", 0.2)
    strategy.observe(a, "other", 0.1)
    assert {strategy.pick([a, b], "d").name for _ in range(20)} == {"a"}
    clock.t = 1.0
    strategy.observe(a, "d", 0.1, penalty=True)  # a 429: counts as 0.5 s
    assert strategy.estimate(a, "d") == pytest.approx(0.5)
    assert {strategy.pick([a, b], "d").name for _ in range(20)} == {"b"}
    # Other domains keep their own estimate (faded by the second gone by).
    assert strategy.estimate(a, "other") == pytest.approx(0.1 * math.exp(-0.1))
    # The node's estimate (the prior of unseen domains) takes the real latency,
    # not the penalised one.
    assert strategy.estimate(a, "unseen") == pytest.approx(0.1)


def test_p2c_priors_for_unseen_pairs() -> None:
    strategy = make_p2c(FakeClock(), default_latency=0.1)
    a, b = make_nodes(1, 1)
    assert strategy.estimate(a, "x") == 0.1  # nothing known at all
    strategy.observe(a, "x", 0.3)
    assert strategy.estimate(a, "y") == pytest.approx(0.3)  # a's own, other domain
    assert strategy.estimate(b, "x") == pytest.approx(0.3)  # the mesh's, for a new node


def test_p2c_node_prior_is_a_plain_average() -> None:
    # One slow site must not make every unseen site look slow on that node:
    # the node's estimate blends instead of jumping to the peak.
    clock = FakeClock()
    strategy = make_p2c(clock)
    (a,) = make_nodes(1)
    strategy.observe(a, "x", 0.1)
    clock.t = 1.0
    strategy.observe(a, "y", 1.0)
    assert strategy.estimate(a, "y") == pytest.approx(1.0)  # the pair does jump
    keep = math.exp(-1 / 10)
    assert strategy.estimate(a, "unseen") == pytest.approx(0.1 * keep + 1.0 * (1 - keep))


def test_p2c_new_node_gets_tried() -> None:
    strategy = make_p2c(FakeClock())
    a, b, c = make_nodes(1, 1, 1)
    strategy.observe(a, "d", 0.2)
    strategy.observe(b, "d", 0.2)
    strategy.observe(a, "d", 0.9)  # the mesh's estimate stays 0.2: same instant
    assert "c" in {strategy.pick([a, b, c], "d").name for _ in range(30)}


def test_p2c_pairs_are_bounded_lru() -> None:
    clock = FakeClock()
    strategy = make_p2c(clock, max_pairs=2)
    (a,) = make_nodes(1)
    strategy.observe(a, "d1", 1.0, penalty=True)  # pair 5.0, node 1.0
    strategy.observe(a, "d2", 1.0)
    strategy.observe(a, "d1", 1.0)  # d1 used again: d2 is now the oldest
    strategy.observe(a, "d3", 1.0)
    assert strategy.estimate(a, "d1") == pytest.approx(5.0)
    strategy.observe(a, "d4", 1.0)  # evicts d1: back to the node's 1.0
    assert strategy.estimate(a, "d1") == pytest.approx(1.0)


def test_p2c_forget_drops_the_node() -> None:
    strategy = make_p2c(FakeClock())
    a, b, c = make_nodes(1, 1, 1)
    strategy.observe(b, "d", 0.2)
    strategy.observe(a, "d", 1.0, penalty=True)
    assert strategy.estimate(a, "d") == pytest.approx(5.0)
    strategy.forget(a)
    assert strategy.estimate(a, "d") == strategy.estimate(c, "d")  # as a stranger


def test_p2c_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="tau > 0"):
        PeakEwmaP2C(tau=0)
    with pytest.raises(ValueError, match="penalty >= 1"):
        PeakEwmaP2C(penalty=0.5)


async def test_p2c_peak_ewma_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    strategy = PeakEwmaP2C(tau=10.0)  # reads trio.current_time
    (a,) = make_nodes(1)
    strategy.observe(a, "d", 1.0)
    await trio.sleep(10)
    # Unrefreshed, the estimate fades: exp(-10 / 10).
    assert strategy.estimate(a, "d") == pytest.approx(math.exp(-1))
    strategy.observe(a, "d", 0.2)  # lower: blended with weight 1 - exp(-dt / tau)
    blended = 1.0 * math.exp(-1) + 0.2 * (1 - math.exp(-1))
    assert strategy.estimate(a, "d") == pytest.approx(blended)
    await trio.sleep(5)
    strategy.observe(a, "d", 2.0)  # higher: the peak is taken at once
    assert strategy.estimate(a, "d") == pytest.approx(2.0)


async def test_p2c_shunned_node_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    strategy = PeakEwmaP2C(rng=random.Random(1), tau=10.0)
    a, b = make_nodes(1, 1)
    strategy.observe(a, "d", 0.1)
    strategy.observe(b, "d", 0.1, penalty=True)  # b looks 5 times slower
    for _ in range(20):
        await trio.sleep(1)
        node = strategy.pick([a, b], "d")
        if node is a:
            strategy.observe(a, "d", 0.1)
        else:
            break
    else:
        pytest.fail("b was never retried")
    # a is always read a second after its last sample, so b wins once
    # 0.5 * exp(-t / 10) < 0.1 * exp(-1 / 10): t > 10 (ln 5 + 0.1) = 17.1 s.
    assert trio.current_time() == pytest.approx(18.0)
