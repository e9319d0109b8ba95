"""The live status block's rendering and the recent rate (pure functions)."""

from __future__ import annotations

import pytest

from crawlmesh import NodeStats
from crawlmesh._observe import RateMeter, Status, node_summary, render_status


def node(
    name: str, requests: int, *, share: float = 0.1, state: str = "up", breaker: str = "closed"
) -> NodeStats:
    return NodeStats(
        name=name,
        kind="node",
        region="eu-west",
        weight=1.0,
        state=state,
        requests=requests,
        errors={"node_overloaded": 2},
        bans=0,
        breaker=breaker,
        share=share,
        expected_share=0.1,
        p50_ms=21.25,
        p95_ms=40.0,
        in_flight=3,
        uneven=False,
    )


def status(nodes: list[NodeStats] | None = None, node_count: int | None = None) -> Status:
    nodes = nodes or []
    return Status(
        elapsed=3725.9,
        pages=12345,
        pages_per_s=56.78,
        items=4321,
        queued=77,
        in_flight=12,
        errors=3,
        nodes=nodes,
        node_count=len(nodes) if node_count is None else node_count,
    )


MESH = [node(f"node-{i:02d}", 1000 - i, share=0.05) for i in range(20)]


def test_header_holds_every_counter() -> None:
    [line] = render_status(status(), width=200)
    assert line == (
        "1:02:05  pages 12345 (56.8 pages/s)  items 4321  queued 77  in flight 12  errors 3"
    )


def test_node_rows_show_share_requests_latency_and_state() -> None:
    lines = render_status(
        status([node("eu-1", 900, share=0.9), node("ap-1", 100, breaker="open")]), width=200
    )
    assert len(lines) == 4
    assert lines[1].split() == [
        "node", "share", "requests", "p50", "ms", "in", "flight", "errors", "state",
    ]  # fmt: skip
    assert lines[2].split() == ["eu-1", "90.0%", "900", "21.2", "3", "2", "up"]
    assert lines[3].split()[0] == "ap-1"
    assert lines[3].endswith("up, breaker open")


@pytest.mark.parametrize("width", [1, 2, 10, 40, 79, 80, 200])
def test_every_line_leaves_the_last_column_free(width: int) -> None:
    long_name = node("a-node-with-a-very-long-name", 5, state="slow-start", breaker="half-open")
    lines = render_status(status([long_name, *MESH]), width=width, max_nodes=8)
    assert all(len(line) <= max(width - 1, 1) for line in lines)
    assert len(lines) == 1 + 1 + 8 + 1  # the height is not what cuts here
    if width >= 80:
        assert lines[2].split()[0] == "a-node-with-a-ve"  # names cut to their column
        assert lines[3].endswith("  up")
    if width == 200:
        assert lines[2].endswith("  slow-start, breaker half-open")


def test_a_node_with_an_open_breaker_fits_80_columns() -> None:
    [_, _, row] = render_status(status([node("eu-1", 9, breaker="open")]), width=80)
    assert row.endswith("  up, breaker open")


def test_a_truncated_line_keeps_its_start() -> None:
    full = render_status(status(), width=200)[0]
    [cut] = render_status(status(), width=30)
    assert cut == full[:29]


def test_node_rows_are_limited_and_the_rest_counted() -> None:
    lines = render_status(status(MESH[:8], node_count=20), width=120, max_nodes=8)
    assert [line.split()[0] for line in lines[2:10]] == [f"node-{i:02d}" for i in range(8)]
    assert lines[10] == "  ... 12 more nodes"
    assert len(lines) == 11
    # A smaller limit than the nodes given.
    lines = render_status(status(MESH), width=120, max_nodes=3)
    assert len(lines) == 1 + 1 + 3 + 1
    assert lines[-1] == "  ... 17 more nodes"


def test_one_more_node_is_said_in_the_singular() -> None:
    lines = render_status(status(MESH[:2], node_count=3), width=120)
    assert lines[-1] == "  ... 1 more node"


@pytest.mark.parametrize(
    ("height", "rows", "more"),
    [
        (24, 8, 12),  # the limit
        (8, 4, 16),  # header, node header, 4 nodes, "more", one row free
        (5, 1, 19),
        (4, 0, 20),  # no room for a node row: only the count
        (3, 0, 0),  # no room for the count either
        (2, 0, 0),
        (1, 0, 0),
    ],
)
def test_a_short_terminal_shows_fewer_rows(height: int, rows: int, more: int) -> None:
    lines = render_status(status(MESH), width=120, height=height, max_nodes=8)
    assert len(lines) <= max(height - 1, 1)
    assert lines[0].startswith("1:02:05  pages 12345")
    shown = [line for line in lines if line.startswith("  node-")]
    assert len(shown) == rows
    counted = [line for line in lines if "more node" in line]
    assert counted == ([f"  ... {more} more nodes"] if more else [])


def test_every_node_shown_needs_no_count() -> None:
    lines = render_status(status(MESH[:3]), width=120)
    assert len(lines) == 5
    assert "more" not in lines[-1]


def test_node_summary_for_progress_lines() -> None:
    nodes = [node("eu-1", 50, share=0.51), node("ap-1", 9, share=0.16, state="down")]
    assert node_summary(status(nodes, node_count=5)) == "eu-1 51%, ap-1 16% down, +3 more"
    breaker = [node("us-1", 3, share=0.333, breaker="open")]
    assert node_summary(status(breaker)) == "us-1 33% up, breaker open"
    assert node_summary(status()) == ""


def test_rate_is_recent_not_the_lifetime_average() -> None:
    meter = RateMeter(window=5.0)
    rates = [meter.update(t * 0.5, min(t, 20) * 50) for t in range(41)]  # 100/s for 10 s, then 0
    assert rates[0] == 0.0
    assert rates[10] == pytest.approx(100.0)
    assert rates[20] == pytest.approx(100.0)
    assert rates[30] == pytest.approx(0.0)  # 5 s without a page; the average is still 50/s
    assert rates[25] == pytest.approx(50.0)  # half of the window before the stop


def test_rate_with_one_sample_per_window() -> None:
    meter = RateMeter(window=10.0)
    assert meter.update(0.0, 0) == 0.0
    assert meter.update(10.0, 50) == pytest.approx(5.0)
    assert meter.update(20.0, 250) == pytest.approx(20.0)
