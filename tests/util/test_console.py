"""The console: log lines go above the status block, never into it."""

from __future__ import annotations

import io

from crawlmesh._util._console import Console
from terminal import Terminal

BLOCK = ["status line one", "  node eu-1 up"]


def replay(out: io.StringIO, columns: int = 40) -> Terminal:
    term = Terminal(columns)
    term.feed(out.getvalue())
    return term


def test_without_a_block_writes_go_straight_through() -> None:
    out = io.StringIO()
    console = Console(out)
    print("a log line", file=console)
    console.write("partial")
    assert out.getvalue() == "a log line\npartial"
    assert not console.showing


def test_log_lines_scroll_above_the_block() -> None:
    out = io.StringIO()
    console = Console(out)
    print("before", file=console)
    console.show(BLOCK)
    assert console.showing
    assert replay(out).lines() == ["before", *BLOCK]
    print("first log line", file=console)
    console.write("second ")
    console.write("log line\nthird log line\n")
    assert replay(out).lines() == [
        "before", "first log line", "second log line", "third log line", *BLOCK,
    ]  # fmt: skip
    console.show(["new status"])  # a shorter block leaves nothing of the old one
    assert replay(out).lines() == [
        "before", "first log line", "second log line", "third log line", "new status",
    ]  # fmt: skip
    console.clear()
    assert not console.showing
    term = replay(out)
    assert term.lines() == ["before", "first log line", "second log line", "third log line"]
    assert (term.row, term.col) == (4, 0)  # the cursor starts a fresh line


def test_a_partial_line_is_held_until_its_newline() -> None:
    out = io.StringIO()
    console = Console(out)
    console.show(BLOCK)
    console.write("half a ")
    assert replay(out).lines() == BLOCK  # nothing of it inside the block
    console.write("line\n")
    assert replay(out).lines() == ["half a line", *BLOCK]


def test_clearing_writes_a_held_partial_line() -> None:
    out = io.StringIO()
    console = Console(out)
    console.show(BLOCK)
    console.write("no newline yet")
    console.clear()
    assert replay(out).lines() == ["no newline yet"]
    console.clear()  # again: nothing shown, nothing written
    assert replay(out).lines() == ["no newline yet"]


def test_a_redraw_with_a_partial_line_held_ends_that_line_first() -> None:
    out = io.StringIO()
    console = Console(out)
    console.show(BLOCK)
    console.write("held")
    console.show(["redrawn"])
    assert replay(out).lines() == ["held", "redrawn"]


def test_a_wrapped_log_line_does_not_move_the_block() -> None:
    out = io.StringIO()
    console = Console(out)
    console.show(BLOCK)
    long_line = "x" * 95  # three rows of 40 columns
    print(long_line, file=console)
    console.show(["updated status"])
    term = replay(out, columns=40)
    assert term.lines() == [long_line, "updated status"]
    assert term.screen()[:3] == ["x" * 40, "x" * 40, "x" * 15]
