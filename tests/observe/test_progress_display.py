"""Progress while crawling: the live status block on a terminal (the real
command, its stderr on a pseudo-terminal, replayed through a small terminal
emulator), the plain progress lines elsewhere, and the choice between them.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from cli.test_cli import json_lines, run_cli, stats_of
from crawlmesh import Engine, JsonLinesWriter, Spider
from crawlmesh._exceptions import UsageError
from crawlmesh._observe import choose_progress, show_live_status
from crawlmesh._settings import load_settings
from crawlmesh._util._console import Console
from terminal import Terminal

COLUMNS, ROWS = 100, 30
# The demo shop at ~100 pages/s: long enough for the block to be redrawn.
SLOW_DEMO = ("demo", "-s", "download_delay=0.01")
HEADER = re.compile(r"^\d+:\d\d:\d\d  pages (\d+) \([\d.]+ pages/s\)  items \d+  queued \d+  ")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d \[(debug|info|warning|error) *\] ")


def open_pty(columns: int = COLUMNS, rows: int = ROWS) -> tuple[int, int]:
    """A pseudo-terminal pair (master, slave) of ``columns`` x ``rows``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


class PtyRun:
    """What a command run with its stderr on a terminal did."""

    def __init__(self, returncode: int, stderr: str, stdout: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        self.term = Terminal(COLUMNS)
        self.term.feed(stderr)  # (fails on an escape sequence it does not know)


def run_in_pty(
    cli: Path,
    *args: str,
    cwd: Path,
    env: dict[str, str],
    stdout_too: bool = False,
    interrupt_after: float | None = None,
    timeout: float = 30,
    size: tuple[int, int] = (COLUMNS, ROWS),
) -> PtyRun:
    """Run ``crawlmesh ARGS`` with stderr (and with ``stdout_too``, stdout)
    on a terminal, else stdout to a file; with ``interrupt_after``, send
    SIGINT once a block has been drawn that many seconds."""
    master, slave = open_pty(*size)
    out_path = cwd / "stdout.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [str(cli), *args],
            cwd=cwd,
            env={"TERM": "xterm", **env},
            stdin=subprocess.DEVNULL,
            stdout=slave if stdout_too else out,
            stderr=slave,
        )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    drawn_at: float | None = None
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"still running after {timeout} s:\n{b''.join(chunks)[-3000:]!r}"
            ready, _, _ = select.select([master], [], [], min(left, 0.1))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if drawn_at is None and b"\x1b[J" in data:
                    drawn_at = time.monotonic()
            if (
                interrupt_after is not None
                and drawn_at is not None
                and time.monotonic() - drawn_at >= interrupt_after
            ):
                proc.send_signal(signal.SIGINT)
                interrupt_after = None
        returncode = proc.wait(max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return PtyRun(returncode, b"".join(chunks).decode(), out_path.read_text())


def blocks(term: Terminal) -> list[list[str]]:
    """The live blocks drawn: the rows from the status header down, in each
    screen seen after a drawing."""
    out = []
    for screen in term.snapshots:
        starts = [i for i, row in enumerate(screen) if HEADER.match(row)]
        if starts:
            out.append([row for row in screen[starts[-1] :] if row])
    return out


def assert_clean_end(run: PtyRun, reason: str) -> list[str]:
    """The final screen: the demo's first line, whole log lines, the final
    stats; nothing of the block. Returns the log lines."""
    lines = run.term.lines()
    assert lines[0].startswith("crawlmesh demo: serving a ")
    [end] = [i for i, line in enumerate(lines) if line.startswith("crawl ")]
    assert lines[end].startswith(f"crawl {reason} in ")
    logs = lines[1:end]
    assert all(LOG_LINE.match(line) for line in logs), "\n".join(logs)
    assert all(line.startswith("  ") for line in lines[end + 1 :]), "\n".join(lines[end:])
    assert not any(HEADER.match(line) or "in flight" in line for line in lines)
    return logs


def test_live_status_on_a_terminal(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    # ~1.6 s: drawn at 0, 0.5, 1 and 1.5 s.
    run = run_in_pty(crawlmesh_cli, *SLOW_DEMO, "--books", "150", cwd=tmp_path, env=cli_env)
    assert run.returncode == 0, run.stderr[-3000:]
    # stdout holds the items and nothing else.
    items = json_lines(run.stdout)
    assert len(items) == 150
    assert "\x1b" not in run.stdout
    assert "pages/s" not in run.stdout
    # The block was drawn several times, in place, with changing figures.
    drawn = blocks(run.term)
    pages = {int(HEADER.match(block[0])[1]) for block in drawn}  # type: ignore[index]
    assert len(pages) >= 3, drawn  # redrawn by the clock, not only around log lines
    assert run.term.ups >= 2
    for block in drawn:
        assert len(block) == 5  # the header, the node header, three nodes
        assert block[1].split()[:3] == ["node", "share", "requests"]
        assert {row.split()[0] for row in block[2:]} == {"eu-1", "us-1", "ap-1"}
        assert all(len(row) < COLUMNS for row in block)
    last = drawn[-1]
    eu = next(row for row in last if row.split()[0] == "eu-1")
    assert re.search(r"\d+\.\d%.*  up$", eu), eu
    # Log lines written meanwhile are whole, above the block; the block is gone
    # before the stats are printed.
    logs = assert_clean_end(run, "finished")
    assert any("node failed; trying another" in line for line in logs)
    assert stats_of("\n".join(run.term.lines()))["items"] == 150


def test_a_terminal_that_reports_no_size_gets_a_whole_block(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    # Some pseudo-terminals (a container's, a CI runner's) report 0x0: the
    # block is drawn 80x24 (as shutil's fallback) instead of cut to "0".
    env = {k: v for k, v in cli_env.items() if k not in ("COLUMNS", "LINES")}
    run = run_in_pty(
        crawlmesh_cli, *SLOW_DEMO, "--books", "100", cwd=tmp_path, env=env, size=(0, 0)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    drawn = blocks(run.term)
    assert drawn, run.stderr[-3000:]
    for block in drawn:
        assert len(block) == 5  # the header, the node header, three nodes
        assert all(len(row) < 80 for row in block)
        assert block[0].split()[-2:-1] == ["errors"]  # the header whole
    assert_clean_end(run, "finished")


def test_ctrl_c_clears_the_block_before_the_stats(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    run = run_in_pty(
        crawlmesh_cli,
        *SLOW_DEMO,
        "--books",
        "1000",
        "-o",
        "items.jsonl",
        cwd=tmp_path,
        env=cli_env,
        interrupt_after=0.3,
    )
    assert run.returncode == 130, run.stderr[-3000:]
    assert blocks(run.term)
    logs = assert_clean_end(run, "shutdown")
    assert any("stopping" in line for line in logs)
    items = json_lines((tmp_path / "items.jsonl").read_text())
    assert 0 < len(items) == stats_of("\n".join(run.term.lines()))["items"] < 1000


def test_quiet_shows_no_progress_on_a_terminal(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    run = run_in_pty(crawlmesh_cli, *SLOW_DEMO, "--books", "40", "-q", cwd=tmp_path, env=cli_env)
    assert run.returncode == 0, run.stderr
    assert run.term.ups == 0
    assert run.term.snapshots == []
    assert "pages/s" not in run.stderr
    assert "progress" not in run.stderr
    assert len(json_lines(run.stdout)) == 40


@pytest.mark.parametrize(
    ("args", "env", "stdout_too"),
    [
        pytest.param((), {}, True, id="items-on-the-same-terminal"),
        pytest.param(("--log-format", "json"), {}, False, id="json-logs"),
        pytest.param((), {"TERM": "dumb"}, False, id="dumb-terminal"),
        pytest.param(("--progress", "lines"), {}, False, id="asked-for-lines"),
    ],
)
def test_plain_progress_lines_when_a_block_would_not_do(
    crawlmesh_cli: Path,
    tmp_path: Path,
    cli_env: dict[str, str],
    args: tuple[str, ...],
    env: dict[str, str],
    stdout_too: bool,
) -> None:
    run = run_in_pty(
        crawlmesh_cli,
        *SLOW_DEMO,
        "--books",
        "60",
        "-s",
        "progress_interval=0.2",
        *args,
        cwd=tmp_path,
        env=cli_env | env,
        stdout_too=stdout_too,
    )
    assert run.returncode == 0, run.stderr
    assert run.term.ups == 0  # nothing drawn in place
    assert run.term.snapshots == []
    progress = [line for line in run.term.lines() if "progress" in line]
    assert progress
    assert all("eu-1 " in line for line in progress)  # the nodes' shares
    if stdout_too:  # items and logs on one terminal, each line whole
        items = [json_lines(line + "\n")[0] for line in run.term.lines() if line[:1] == "{"]
        assert len(items) == 60


def test_live_cannot_share_the_terminal_with_the_items(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    run = run_in_pty(
        crawlmesh_cli, "demo", "--progress", "live", cwd=tmp_path, env=cli_env, stdout_too=True
    )
    assert run.returncode == 2
    assert run.term.lines() == [
        "crawlmesh: error: --progress live: the items are printed on this terminal; "
        "send them elsewhere with -o FILE (or a pipe)"
    ]


def test_progress_lines_when_stderr_is_not_a_terminal(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    result = run_cli(
        crawlmesh_cli, *SLOW_DEMO, "--books", "60", "-s", "progress_interval=0.2",
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if "] progress " in line]
    assert progress, result.stderr
    keys = ("pages", "pages_per_s", "items", "queued", "in_flight", "errors")
    for line in progress:
        assert all(re.search(rf" {key}=\d", line) for key in keys), line
        nodes = re.search(r" nodes='([^']*)'", line)
        assert nodes is not None, line
        assert all(re.search(rf"\b{name} \d+%", nodes[1]) for name in ("eu-1", "us-1", "ap-1"))
    assert len(json_lines(result.stdout)) == 60
    assert stats_of(result.stderr)["items"] == 60


# -- choosing -----------------------------------------------------------------


@pytest.fixture
def terminals() -> Iterator[tuple[int, int, int, int]]:
    """Two terminals' slave ends (one opened twice) and a pipe's write end."""
    m1, s1 = pty.openpty()
    m2, s2 = pty.openpty()
    again = os.open(os.ttyname(s1), os.O_RDWR | os.O_NOCTTY)
    r, w = os.pipe()
    yield s1, again, s2, w
    for fd in (m1, s1, m2, s2, again, r, w):
        os.close(fd)


def test_choice_between_live_lines_and_none(
    terminals: tuple[int, int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty, same_tty, other_tty, pipe = terminals
    monkeypatch.setenv("TERM", "xterm")

    def choose(
        requested: str | None = None,
        *,
        out: int,
        err: int,
        quiet: bool = False,
        json_logs: bool = False,
        items_on_stdout: bool = True,
    ) -> str:
        return choose_progress(
            requested,  # type: ignore[arg-type]
            quiet=quiet,
            json_logs=json_logs,
            items_on_stdout=items_on_stdout,
            stdout_fd=out,
            stderr_fd=err,
        )

    assert choose(out=pipe, err=tty) == "live"
    assert choose(out=other_tty, err=tty) == "live"  # another terminal shows the items
    assert choose(out=same_tty, err=tty) == "lines"  # the block would erase items
    assert choose(out=same_tty, err=tty, items_on_stdout=False) == "live"  # -o FILE
    assert choose(out=tty, err=pipe) == "lines"
    assert choose(out=pipe, err=tty, json_logs=True) == "lines"
    assert choose(out=pipe, err=tty, quiet=True) == "none"
    assert choose("lines", out=pipe, err=tty, quiet=True) == "lines"  # explicit wins
    assert choose("none", out=pipe, err=tty) == "none"
    assert choose("live", out=pipe, err=pipe) == "live"  # asked for: drawn on a pipe too
    with pytest.raises(UsageError, match="-o FILE"):
        choose("live", out=same_tty, err=tty)
    monkeypatch.setenv("TERM", "dumb")
    assert choose(out=pipe, err=tty) == "lines"


# -- the block's clock, in virtual time ----------------------------------------


class Idle(Spider):
    name = "idle"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    items = JsonLinesWriter(tmp_path / "items.jsonl")
    yield Engine(Idle(), load_settings([]), items=items)
    items.close()


async def test_block_is_redrawn_every_half_second_and_erased_at_the_end(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    out = io.StringIO()
    console = Console(out)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(show_live_status, engine, console=console))
        await trio.sleep(0.25)  # (between drawings, so no tie decides what is drawn)
        for _ in range(4):
            engine.stats.pages += 50
            await trio.sleep(0.5)
        assert console.showing
        nursery.cancel_scope.cancel()
    assert not console.showing
    term = Terminal(80)
    term.feed(out.getvalue())
    headers = [screen[0] for screen in term.snapshots if screen and screen[0]]
    assert [HEADER.match(h)[1] for h in headers] == ["0", "50", "100", "150", "200"]  # type: ignore[index]
    assert headers[0].startswith("0:00:00  pages 0 (0.0 pages/s)")
    assert headers[-1].startswith("0:00:02  pages 200 (100.0 pages/s)")
    assert term.lines() == []  # erased


async def test_block_is_erased_when_the_crawl_fails(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    out = io.StringIO()
    console = Console(out)

    async def crawl_that_fails() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(show_live_status, engine, console=console))
            await trio.sleep(0.75)
            raise RuntimeError("boom")

    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="boom")):
        await crawl_that_fails()
    assert not console.showing
    term = Terminal(80)
    term.feed(out.getvalue())
    assert len(term.snapshots) == 3  # two drawings, one erasure
    assert term.lines() == []
