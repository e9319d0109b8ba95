"""Health policy: active checks and slow start, in virtual time."""

from __future__ import annotations

import msgspec
import pytest
import structlog
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import HealthSettings, NodeSpec
from crawlmesh._balancer import HealthTracker, NodeState, ProbeResult, open_health_checks
from crawlmesh._util._log import configure_logging

OK = ProbeResult(ok=True, latency=0.01)
BAD = ProbeResult(ok=False, latency=0.01, detail="connection refused")


def make_nodes(*names: str, weight: float = 1.0) -> list[NodeState]:
    return [NodeState(NodeSpec(name, weight=weight), i) for i, name in enumerate(names)]


def make_tracker(*names: str, weight: float = 1.0, **config: float) -> HealthTracker:
    return HealthTracker(msgspec.convert(config, HealthSettings), make_nodes(*names, weight=weight))


def by_name(tracker: HealthTracker, name: str) -> NodeState:
    node = tracker.node(name)
    assert node is not None
    return node


async def sleep_to(start: float, offset: float) -> None:
    await trio.sleep_until(start + offset)


# -- active checks: thresholds ---------------------------------------------


async def test_down_after_exactly_fails(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", fails=3)
    a = by_name(t, "a")
    for _ in range(2):
        t.record_probe(a, BAD)
        assert t.state(a) == "up"
        assert a in t.eligible()
    t.record_probe(a, BAD)
    assert t.state(a) == "down"
    assert t.eligible() == [by_name(t, "b")]


async def test_up_after_exactly_passes(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", fails=1, passes=3)
    a = by_name(t, "a")
    t.record_probe(a, BAD)
    for _ in range(2):
        t.record_probe(a, OK)
        assert t.state(a) == "down"
    t.record_probe(a, OK)
    assert t.state(a) == "slow-start"
    assert a in t.eligible()


async def test_streaks_are_consecutive(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", fails=2, passes=2)
    a = by_name(t, "a")
    t.record_probe(a, BAD)
    t.record_probe(a, OK)
    t.record_probe(a, BAD)
    assert t.state(a) == "up", "a pass in between restarts the failure count"
    t.record_probe(a, BAD)
    assert t.state(a) == "down"
    t.record_probe(a, OK)
    t.record_probe(a, BAD)
    t.record_probe(a, OK)
    assert t.state(a) == "down", "a failure in between restarts the pass count"
    t.record_probe(a, OK)
    assert t.state(a) != "down"


@pytest.mark.parametrize(
    ("result", "passes"),
    [
        (ProbeResult(ok=True, latency=0.1, status="healthy"), True),
        (ProbeResult(ok=True, latency=0.1, status="Healthy "), True),
        (ProbeResult(ok=True, latency=0.1, status="degraded"), True),
        (ProbeResult(ok=True, latency=0.1, status="draining"), False),
        (ProbeResult(ok=True, latency=0.1, status="starting"), False),
        (ProbeResult(ok=False, latency=0.1, status="healthy"), False),
        (ProbeResult(ok=True, latency=0.1, cpu_usage=90.0), True),
        (ProbeResult(ok=True, latency=0.1, cpu_usage=90.5), False),
        (ProbeResult(ok=True, latency=0.1, queue_size=1000), True),
        (ProbeResult(ok=True, latency=0.1, queue_size=1001), False),
    ],
    ids=[
        "healthy",
        "healthy-spelt-loosely",
        "degraded",
        "draining",
        "unknown-status",
        "not-ok",
        "cpu-at-max",
        "cpu-over",
        "queue-at-max",
        "queue-over",
    ],
)
async def test_health_report_thresholds(
    autojump_clock: trio.testing.MockClock, result: ProbeResult, passes: bool
) -> None:
    t = make_tracker("a", "b", fails=1, cpu_max=90.0, queue_max=1000)
    a = by_name(t, "a")
    t.record_probe(a, result)
    assert (t.state(a) == "up") is passes


async def test_degraded_keeps_the_weight(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", weight=3.0, fails=1)
    a = by_name(t, "a")
    version = t.version
    for _ in range(3):
        t.record_probe(a, ProbeResult(ok=True, latency=0.1, status="degraded"))
    assert a.effective_weight == 3.0
    assert t.version == version


# -- active checks: the checker tasks --------------------------------------


async def test_checks_run_every_interval_until_the_block_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = make_tracker("a", "b", interval=5.0)
    start = trio.current_time()
    calls: list[tuple[str, float]] = []

    async def probe(node: NodeState) -> ProbeResult:
        calls.append((node.name, trio.current_time() - start))
        await trio.sleep(1.5)  # the interval runs start to start
        return OK

    async with open_health_checks(t, probe):
        await sleep_to(start, 12.0)
    for name in ("a", "b"):
        assert [at for n, at in calls if n == name] == pytest.approx([0.0, 5.0, 10.0])
    await trio.sleep(20)
    assert len(calls) == 6, "no probe after the block ended"


async def test_hanging_probe_fails_after_timeout(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", interval=5.0, timeout=2.0, fails=2)
    a, b = by_name(t, "a"), by_name(t, "b")

    async def probe(node: NodeState) -> ProbeResult:
        if node.name == "a":
            await trio.sleep_forever()
        return OK

    start = trio.current_time()
    async with open_health_checks(t, probe):
        # Checks start at 0 and 5; each gives up 2 s later.
        await sleep_to(start, 6.9)
        assert t.state(a) == "up"
        await sleep_to(start, 7.1)
        assert t.state(a) == "down"
        assert t.state(b) == "up"


async def test_probe_that_raises_is_a_failed_check(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", interval=1.0, fails=2)

    async def probe(node: NodeState) -> ProbeResult:
        if node.name == "a":
            raise OSError("network unreachable")
        return OK

    async with open_health_checks(t, probe):
        await trio.sleep(1.5)
    assert t.state(by_name(t, "a")) == "down"
    assert t.state(by_name(t, "b")) == "up"


async def test_node_goes_down_and_comes_back(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", interval=1.0, fails=2, passes=2)
    a = by_name(t, "a")
    healthy = False

    async def probe(node: NodeState) -> ProbeResult:
        return OK if healthy or node.name == "b" else BAD

    start = trio.current_time()
    async with open_health_checks(t, probe):
        await sleep_to(start, 0.5)
        assert t.state(a) == "up"
        await sleep_to(start, 1.5)  # failed at 0 and 1
        assert t.state(a) == "down"
        healthy = True
        await sleep_to(start, 2.5)  # passed at 2
        assert t.state(a) == "down"
        await sleep_to(start, 3.5)  # passed at 3
        assert t.state(a) == "slow-start"


async def test_checkers_follow_set_nodes(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", interval=1.0)
    start = trio.current_time()
    calls: list[tuple[NodeState, float]] = []

    async def probe(node: NodeState) -> ProbeResult:
        calls.append((node, trio.current_time() - start))
        return OK

    new_b, c = make_nodes("b", "c")
    async with open_health_checks(t, probe):
        await sleep_to(start, 1.5)
        t.set_nodes([new_b, c])
        await sleep_to(start, 5.25)
    after = [node for node, at in calls if at >= 1.5]
    assert {node.name for node in after} == {"b", "c"}
    assert all(node is new_b for node in after if node.name == "b"), "probes get the new state"
    assert [at for node, at in calls if node is c] == pytest.approx([1.5, 2.5, 3.5, 4.5])


async def test_a_removed_node_stops_being_probed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = make_tracker("a", "b", interval=5.0, timeout=2.0)
    start = trio.current_time()
    ended: dict[str, float] = {}

    async def probe(node: NodeState) -> ProbeResult:
        try:
            await trio.sleep_forever()
        finally:
            ended[node.name] = trio.current_time() - start

    async with open_health_checks(t, probe):
        await sleep_to(start, 0.5)
        t.set_nodes([by_name(t, "b")])
        await sleep_to(start, 1.0)
        assert ended == {"a": pytest.approx(0.5)}


async def test_every_node_down_leaves_none_eligible(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", fails=1)
    for node in t.nodes:
        t.record_probe(node, BAD)
    assert t.eligible() == []


# -- slow start ------------------------------------------------------------


async def test_slow_start_ramp(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", weight=4.0, fails=1, passes=1, slow_start=10.0)
    a = by_name(t, "a")
    t.record_probe(a, BAD)
    t.record_probe(a, OK)
    start = trio.current_time()
    seen: list[float] = []
    for offset in (0.0, 2.6, 5.1, 9.9):
        await sleep_to(start, offset)
        t.eligible()
        seen.append(a.effective_weight)
        assert t.state(a) == "slow-start"
    # 10% + 90% x (whole 20ths of slow_start elapsed), of weight 4.
    assert seen == pytest.approx([0.4, 1.3, 2.2, 3.82])
    await sleep_to(start, 10.0)
    assert t.state(a) == "up"
    assert a.effective_weight == 4.0


@given(
    weight=st.floats(0.01, 1000.0),
    slow_start=st.floats(0.1, 600.0),
    offsets=st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=30),
)
def test_ramp_rises_from_a_tenth_to_full(
    weight: float, slow_start: float, offsets: list[float]
) -> None:
    async def main() -> None:
        t = make_tracker("a", "b", weight=weight, fails=1, passes=1, slow_start=slow_start)
        a = by_name(t, "a")
        t.record_probe(a, BAD)
        t.record_probe(a, OK)
        start, version, last = trio.current_time(), t.version, 0.0
        for offset in sorted(offsets):
            await sleep_to(start, offset)
            t.eligible()
            w = a.effective_weight
            assert weight * 0.1 - 1e-9 <= w <= weight
            assert w >= last, "never falls back"
            last = w
            if offset >= slow_start:
                assert w == weight
        assert t.version - version <= 20

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_ramp_on_demand_starts_a_slow_start(autojump_clock: trio.testing.MockClock) -> None:
    # What the balancer does when a node's circuit breaker closes.
    t = make_tracker("a", "b", weight=4.0, slow_start=10.0)
    a = by_name(t, "a")
    version = t.version
    t.ramp(a)
    assert t.version > version
    assert (t.state(a), a.effective_weight) == ("slow-start", pytest.approx(0.4))
    await trio.sleep(5.0)
    t.eligible()  # time's changes are applied by the next query
    assert a.effective_weight == pytest.approx(4.0 * 0.55)
    t.record_probe(a, BAD)
    t.record_probe(a, BAD)  # down: ramp() on a down node changes nothing
    t.ramp(a)
    assert t.state(a) == "down"


async def test_slow_start_zero_disables(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", weight=2.0, fails=1, passes=1, slow_start=0.0)
    a = by_name(t, "a")
    t.record_probe(a, BAD)
    t.record_probe(a, OK)
    assert t.state(a) == "up"
    assert a.effective_weight == 2.0


async def test_first_mesh_starts_at_full_weight(autojump_clock: trio.testing.MockClock) -> None:
    t = HealthTracker(HealthSettings(slow_start=10.0))
    t.set_nodes(make_nodes("a", "b", weight=3.0))
    assert [t.state(n) for n in t.nodes] == ["up", "up"]
    assert [n.effective_weight for n in t.eligible()] == [3.0, 3.0]


def test_tracker_fills_outside_trio() -> None:
    t = HealthTracker()
    t.set_nodes(make_nodes("a", "b"))
    assert [n.name for n in t.eligible()] == ["a", "b"]


# -- version and on_change -------------------------------------------------


async def test_version_bumps_only_on_changes(autojump_clock: trio.testing.MockClock) -> None:
    bumps: list[int] = []
    t = HealthTracker(
        HealthSettings(fails=2, slow_start=0.0),
        make_nodes("a", "b"),
        on_change=lambda: bumps.append(t.version),
    )
    a = by_name(t, "a")
    version, eligible = t.version, t.eligible()
    t.record_probe(a, OK)
    t.record_probe(a, BAD)  # below fails
    await trio.sleep(100)
    assert t.eligible() is eligible, "unchanged: the same cached list"
    assert (t.version, bumps) == (version, [])
    t.record_probe(a, BAD)
    assert (t.version, bumps) == (version + 1, [version + 1])
    assert t.eligible() is not eligible


async def test_version_bumps_on_each_ramp_step_then_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = make_tracker("a", "b", fails=1, passes=1, slow_start=10.0)
    a = by_name(t, "a")
    t.record_probe(a, BAD)
    t.record_probe(a, OK)
    start, version = trio.current_time(), t.version
    for i in range(1, 61):  # four samples per step, 15 s
        await sleep_to(start, i * 0.25)
        t.eligible()
    assert t.version - version == 20, "one bump per step of 20, then none"


# -- mesh reloads ----------------------------------------------------------


async def test_set_nodes_keeps_surviving_state(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a", "b", "c", "d", weight=2.0, fails=1, passes=1, slow_start=10.0)
    a, b, c, _ = t.nodes
    t.record_probe(b, BAD)  # down
    t.record_probe(c, BAD)
    t.record_probe(c, OK)  # ramping from now
    await trio.sleep(5.1)
    version = t.version
    new = [NodeState(NodeSpec(name, weight=2.0), i) for i, name in enumerate("bcde")]
    t.set_nodes(new)
    nb, nc, nd, ne = new
    assert t.version > version
    assert [t.state(n) for n in new] == ["down", "slow-start", "up", "slow-start"]
    assert t.eligible() == [nc, nd, ne]
    assert nc.effective_weight == pytest.approx(2.0 * 0.55), "c keeps its place on the ramp"
    assert ne.effective_weight == pytest.approx(0.2), "a node joining ramps up"
    assert t.node("a") is None
    t.record_probe(a, BAD)  # a late probe of a removed node is ignored
    t.record_probe(b, OK)  # results reach the surviving node by name
    assert t.state(nb) == "slow-start"


async def test_set_nodes_rejects_duplicate_names(autojump_clock: trio.testing.MockClock) -> None:
    t = make_tracker("a")
    with pytest.raises(ValueError, match="unique: b"):
        t.set_nodes(make_nodes("b", "c", "b"))


# -- logging and configuration ---------------------------------------------


async def test_transitions_are_logged(autojump_clock: trio.testing.MockClock) -> None:
    configure_logging("debug")
    t = make_tracker("a", "b", "c", fails=2, passes=1)
    a, _, _ = t.nodes
    with structlog.testing.capture_logs() as logs:
        t.record_probe(a, BAD)
        t.record_probe(a, BAD)
        t.record_probe(a, OK)
    events = {(e["event"], e["node"]): e for e in logs if "node" in e}
    assert "connection refused" in events["node down", "a"]["reason"]
    assert events["node up", "a"]["reason"] == "1 checks passed"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="fails"):
        msgspec.convert({"fails": 0}, HealthSettings)
    with pytest.raises(msgspec.ValidationError, match="interval"):
        msgspec.convert({"interval": 0}, HealthSettings)
    with pytest.raises(msgspec.ValidationError, match="rise"):
        msgspec.convert({"rise": 2}, HealthSettings)
