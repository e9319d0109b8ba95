"""Graceful shutdown of ``crawlmesh crawl`` on SIGINT and SIGTERM.

Each test runs the real console script against ``slow_site_url`` (2,000
pages, 20 ms each: with ``-s concurrency=8`` a full crawl takes 5 s or more,
plenty of time to interrupt it) and signals it once items are flowing.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ITEM_PAGES = 667
STATS_LINE = re.compile(
    r"^crawl (?P<reason>\w+) in [\d.]+ s: (?P<pages>\d+) pages \([\d.]+ pages/s\), "
    r"(?P<items>\d+) items, (?P<errors>\d+) errors$",
    re.M,
)
UNFINISHED_LINE = re.compile(r"^  unfinished \(left in the frontier\): (\d+)$", re.M)


class Crawl:
    """A ``crawlmesh crawl spiders.follow`` subprocess, stderr to a file."""

    def __init__(
        self, cli: Path, project: Path, env: dict[str, str], start_url: str, *args: str
    ) -> None:
        self.items = project / "items.jsonl"
        self.errors = project / "errors.jsonl"
        self.stderr_path = project / "stderr.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(cli),
                "crawl",
                "spiders.follow",
                "-a",
                f"start_url={start_url}",
                "-o",
                str(self.items),
                *args,
            ],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def wait_for_items(self, n: int, timeout: float = 20) -> None:
        """Poll until the items file holds at least ``n`` lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"crawl exited early ({self.proc.returncode}):\n{self.stderr()}")
            if self.items.exists() and self.items.read_bytes().count(b"\n") >= n:
                return
            time.sleep(0.01)
        pytest.fail(f"fewer than {n} items after {timeout} s:\n{self.stderr()}")

    def wait_for_stderr(self, ready: Callable[[str], bool], what: str, timeout: float = 20) -> None:
        """Poll until ``ready`` holds for all of stderr so far (``what`` it waits for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready(self.stderr(tail=10**7)):
                return
            if self.proc.poll() is not None:
                code = self.proc.returncode
                pytest.fail(f"crawl exited before {what} ({code}):\n{self.stderr()}")
            time.sleep(0.01)
        pytest.fail(f"no {what} after {timeout} s:\n{self.stderr()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"crawl still running {timeout} s later:\n{self.stderr()}")

    def stderr(self, tail: int = 4000) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-tail:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def crawl(crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]) -> Iterator[Any]:
    """Start crawls with ``crawl(start_url, *args)``; all are killed at teardown."""
    started: list[Crawl] = []

    def start(start_url: str, *args: str) -> Crawl:
        c = Crawl(crawlmesh_cli, cli_project, cli_env, start_url, *args)
        started.append(c)
        return c

    try:
        yield start
    finally:
        for c in started:
            c.close()


def whole_lines(data: bytes) -> list[Any]:
    """Decode a JSON-lines snapshot: empty, or whole lines each one JSON value."""
    if not data:
        return []
    assert data.endswith(b"\n"), f"torn last line: {data[-200:]!r}"
    return [json.loads(line) for line in data.splitlines()]


def final_stats(stderr: str) -> dict[str, Any]:
    matches = list(STATS_LINE.finditer(stderr))
    assert len(matches) == 1, f"expected the final stats on stderr:\n{stderr}"
    m = matches[0]
    unfinished = UNFINISHED_LINE.search(stderr)
    return {
        "reason": m["reason"],
        "pages": int(m["pages"]),
        "items": int(m["items"]),
        "errors": int(m["errors"]),
        "unfinished": int(unfinished[1]) if unfinished else 0,
    }


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_signal_stops_gracefully(crawl: Any, slow_site_url: str, signum: int, status: int) -> None:
    c = crawl(f"{slow_site_url}/p/0", "-s", "concurrency=8")
    c.wait_for_items(20)
    c.signal(signum)
    # At the moment of the signal the file holds whole lines only.
    at_signal = whole_lines(c.items.read_bytes())
    assert len(at_signal) >= 20
    assert c.wait() == status, c.stderr()
    data = c.items.read_bytes()
    items = whole_lines(data)
    assert data.endswith(b"\n")
    assert items[: len(at_signal)] == at_signal  # nothing rewritten
    assert len({item["sku"] for item in items}) == len(items)
    stats = final_stats(c.stderr())
    assert "crawl shutdown" in c.stderr()
    assert stats["reason"] == "shutdown"
    assert stats["items"] == len(items)
    assert len(items) < ITEM_PAGES, "the crawl was not interrupted"


def test_second_sigint_exits_at_once(
    crawl: Any, slow_site_url: str, hostile_process_url: str
) -> None:
    # /never keeps the first, graceful stop waiting (up to shutdown_timeout).
    # (It is requested as "localhost": see test_hanging_request_does_not_hold_back_its_host.)
    hang = hostile_process_url.replace("127.0.0.1", "localhost") + "/never"
    c = crawl(
        f"{slow_site_url}/p/0",
        "-a",
        f"hang_url={hang}",
        "--errors",
        "errors.jsonl",
        "-s",
        "concurrency=8",
        "-s",
        "shutdown_timeout=30",
        "-s",
        "progress_interval=0.1",
    )
    c.wait_for_items(20)
    c.signal(signal.SIGINT)
    # The crawl stopping, and two progress lines on with nothing in flight
    # but /never: it is waiting for that one (up to shutdown_timeout).
    c.wait_for_stderr(
        lambda err: err.partition("] stopping ")[2].count(" in_flight=1 ") >= 2,
        "/never alone in flight",
    )
    assert c.proc.poll() is None, "the first SIGINT should wait for /never"
    whole_lines(c.items.read_bytes())
    second = time.monotonic()
    c.signal(signal.SIGINT)
    assert c.wait(timeout=10) == 130
    assert time.monotonic() - second < 3
    assert "second signal" in c.stderr()
    assert "crawl shutdown" not in c.stderr()  # it did not wait to finish
    items = whole_lines(c.items.read_bytes())
    assert len(items) >= 20
    # Nothing is lost: what the first signal left (the requests queued, then
    # the hanging one still in flight) is in the errors file, each once.
    said = re.search(r"(\d+) requests not finished, written to the errors file", c.stderr())
    assert said is not None, c.stderr()
    records = whole_lines(c.errors.read_bytes())
    unfinished = [r["url"] for r in records if r["kind"] == "unfinished"]
    assert len(unfinished) == len(set(unfinished))
    assert not {item["url"] for item in items} & set(unfinished)
    at_exit = [r["url"] for r in records if r["reason"].endswith("(second signal)")]
    assert hang in at_exit
    assert len(at_exit) == int(said[1])


def test_unfinished_requests_go_to_the_errors_file(crawl: Any, slow_site_url: str) -> None:
    c = crawl(f"{slow_site_url}/p/0", "--errors", "errors.jsonl", "-s", "concurrency=8")
    c.wait_for_items(20)
    c.signal(signal.SIGINT)
    assert c.wait() == 130, c.stderr()
    stats = final_stats(c.stderr())
    records = whole_lines(c.errors.read_bytes())
    unfinished = [r for r in records if r["kind"] == "unfinished"]
    assert stats["unfinished"] > 0
    assert len(unfinished) == stats["unfinished"]
    assert all(r["reason"] and r["url"] for r in unfinished)
    # The other records are the broken links met so far, counted as errors.
    others = [r for r in records if r["kind"] != "unfinished"]
    assert len(others) == stats["errors"]
    assert {r["kind"] for r in others} <= {"http_error"}
    assert len(whole_lines(c.items.read_bytes())) == stats["items"]


def test_unfinished_records_are_requests_really_left_unfetched(
    crawl: Any, slow_site_url: str
) -> None:
    c = crawl(f"{slow_site_url}/p/0", "--errors", "errors.jsonl", "-s", "concurrency=8")
    c.wait_for_items(20)
    c.signal(signal.SIGINT)
    assert c.wait() == 130, c.stderr()
    fetched = {item["url"] for item in whole_lines(c.items.read_bytes())}
    unfinished = [r["url"] for r in whole_lines(c.errors.read_bytes()) if r["kind"] == "unfinished"]
    assert unfinished
    bad_scheme = [u for u in unfinished if not u.startswith(("http://", "https://"))]
    assert not bad_scheme, f"never fetchable, yet reported unfinished: {set(bad_scheme)}"
    assert len(unfinished) == len(set(unfinished)), "the same request reported twice"
    done = fetched.intersection(u.partition("#")[0] for u in unfinished)
    assert not done, f"fetched, yet reported unfinished: {sorted(done)[:5]}"


def test_output_never_shows_a_torn_line(crawl: Any, slow_site_url: str) -> None:
    c = crawl(f"{slow_site_url}/p/0", "-s", "concurrency=8")
    c.wait_for_items(1)
    sizes = set()
    deadline = time.monotonic() + 1.5
    rng = random.Random(0)
    while time.monotonic() < deadline and c.proc.poll() is None:
        data = c.items.read_bytes()
        if data and not data.endswith(b"\n"):
            # A write that crosses a page boundary grows the file page by
            # page, so a reader can catch one line mid-write: it must be
            # whole a moment later (written by one call, never left torn).
            later = c.items.read_bytes()
            whole_by = time.monotonic() + 5
            while b"\n" not in later[len(data) :]:
                assert time.monotonic() < whole_by, f"a line left torn: {later[-200:]!r}"
                time.sleep(0.001)
                later = c.items.read_bytes()
            assert later.startswith(data), "the file was rewritten"
            data = later[: later.index(b"\n", len(data)) + 1]
        whole_lines(data)
        sizes.add(len(data))
        time.sleep(rng.uniform(0, 0.004))
    assert c.proc.poll() is None, "the crawl ended before the file was watched for long"
    assert len(sizes) >= 10, "the file hardly grew while it was watched"
    c.signal(signal.SIGINT)
    assert c.wait() == 130
    assert len(whole_lines(c.items.read_bytes())) == final_stats(c.stderr())["items"]


def test_hanging_request_does_not_hold_back_its_host(
    crawl: Any, slow_site_url: str, hostile_process_url: str
) -> None:
    """Found while writing test_second_sigint_exits_at_once: both sites are
    served on 127.0.0.1, so they share one politeness slot; a first request
    that hangs must not stop the crawl of the other site."""
    c = crawl(
        f"{slow_site_url}/p/0",
        "-a",
        f"hang_url={hostile_process_url}/never",
        "-s",
        "concurrency=8",
        "-s",
        "shutdown_timeout=0.2",
    )
    try:
        c.wait_for_items(1, timeout=3)
    finally:
        c.signal(signal.SIGINT)
        c.wait()


# -- --jobdir: pause and resume ------------------------------------------------


def skus(c: Crawl) -> list[str]:
    return [item["sku"] for item in whole_lines(c.items.read_bytes())]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_or_stopped_crawl_resumes_and_yields_each_item_once(
    crawl: Any, slow_site_url: str, signum: int
) -> None:
    args = ("--jobdir", "job", "--errors", "errors.jsonl", "-s", "concurrency=8")
    first = crawl(f"{slow_site_url}/p/0", *args)
    first.wait_for_items(120)
    first.signal(signum)
    first.wait()
    before = len(skus(first)) if signum == signal.SIGINT else None
    second = crawl(f"{slow_site_url}/p/0", *args)
    assert second.wait(60) == 0, second.stderr()
    assert "resuming" in second.stderr(tail=10**7)
    found = skus(second)
    assert len(found) == len(set(found)), "an item was delivered twice"
    assert len(found) == ITEM_PAGES
    stats = final_stats(second.stderr())
    assert stats["items"] == ITEM_PAGES  # the counts carry over the resume
    if before is not None:
        assert found[:before] == skus(first)[:before]  # a clean stop cuts nothing


def test_a_finished_job_does_nothing_again(crawl: Any, slow_site_url: str) -> None:
    args = ("--jobdir", "job", "-s", "concurrency=16")
    first = crawl(f"{slow_site_url}/p/0", *args)
    assert first.wait(60) == 0, first.stderr()
    second = crawl(f"{slow_site_url}/p/0", *args)
    assert second.wait(30) == 0, second.stderr()
    assert len(skus(second)) == ITEM_PAGES
    pages = final_stats(first.stderr())["pages"]
    assert final_stats(second.stderr())["pages"] == pages
    # The rate is this run's: it fetched nothing (it printed ~18,000 pages/s).
    assert f" {pages} pages (0.0 pages/s), " in second.stderr()
    assert f"resumed: {pages} of the pages were fetched by earlier runs, 0 by this one" in (
        second.stderr()
    )


# -- SIGHUP: the mesh is re-read, wherever it was declared ----------------------------


@pytest.mark.parametrize("where", ["--nodes", "--settings"])
def test_sighup_rereads_the_mesh_from_either_file(
    crawl: Any, slow_site_url: str, cli_project: Path, where: str
) -> None:
    # (reload_interval = 0: only the signal re-reads it.)
    settings = cli_project / "settings.toml"
    nodes = cli_project / "nodes.toml"
    one = "[[nodes]]\nname = 'first'\n"
    two = one + "\n[[nodes]]\nname = 'second'\n"
    settings.write_text("concurrency = 8\n\n[balancer]\nreload_interval = 0\n\n")
    if where == "--nodes":
        nodes.write_text(one)
        args = ("--settings", str(settings), "--nodes", str(nodes))
    else:
        settings.write_text(settings.read_text() + one)
        args = ("--settings", str(settings))
    c = crawl(f"{slow_site_url}/p/0", *args)
    c.wait_for_items(20)
    if where == "--nodes":
        nodes.write_text(two)
    else:
        settings.write_text(settings.read_text().replace(one, two))
    c.signal(signal.SIGHUP)
    c.wait_for_stderr(lambda err: "node file reloaded" in err, "the reload line", timeout=10)
    c.signal(signal.SIGINT)
    assert c.wait() == 130, c.stderr()
    [line] = [x for x in c.stderr(tail=10**7).splitlines() if "node file reloaded" in x]
    assert "second" in line, line
