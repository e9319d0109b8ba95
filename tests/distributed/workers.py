"""Crawl workers as real ``crawlmesh crawl`` processes, and a site process
that logs every hit, for the distributed tests."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import start_server_process

__all__ = ["Site", "Worker", "items_of", "start_site"]


class Site:
    """A generated site in its own process; ``hits()`` reads its hit log."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def hits(self) -> list[tuple[float, str]]:
        out = []
        for line in self.log.read_text().splitlines():
            when, _, target = line.partition(" ")
            out.append((float(when), target))
        return out

    def page_hits(self) -> Counter[str]:
        return Counter(t.partition("?")[0] for _, t in self.hits() if t.startswith("/p/"))


def start_site(
    directory: Path, pages: int, delay: float = 0.0, pushback_at: int = 0
) -> Iterator[Site]:
    log = directory / "hits.log"
    args = ["generated", "--pages", str(pages), "--delay", str(delay), "--hits", str(log)]
    args += ["--pushback-at", str(pushback_at)]
    for url in start_server_process("sites.py", *args):
        yield Site(url, log)


class Worker:
    """One ``crawlmesh crawl spiders.follow --backend URL`` process."""

    def __init__(
        self,
        cli: Path,
        project: Path,
        env: dict[str, str],
        n: int,
        start_url: str,
        backend: str,
        *args: str,
    ) -> None:
        self.n = n
        self.items = project / f"items-{n}.jsonl"
        self.stderr_path = project / f"stderr-{n}.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(cli), "crawl", "spiders.follow",
                "-a", f"start_url={start_url}",
                "-o", str(self.items),
                "--errors", str(project / f"errors-{n}.jsonl"),
                "--backend", backend,
                *args,
            ],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )  # fmt: skip

    def item_count(self) -> int:
        return self.items.read_bytes().count(b"\n") if self.items.exists() else 0

    def wait_for_items(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.n} exited early:\n{self.stderr()}")
            if self.item_count() >= n:
                return
            time.sleep(0.01)
        pytest.fail(f"worker {self.n}: fewer than {n} items after {timeout} s")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Poll until ``text`` is on the worker's stderr."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.n} exited before {text!r}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.n}: no {text!r} after {timeout} s:\n{self.stderr()}")
            time.sleep(0.01)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.n} still running {timeout} s later:\n{self.stderr()}")

    def stderr(self, tail: int = 6000) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-tail:]

    def log(self) -> str:
        """All of stderr."""
        return self.stderr(tail=10**8)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def items_of(workers: list[Worker]) -> list[Any]:
    """Every item the workers wrote, from whole lines only."""
    out = []
    for w in workers:
        if w.items.exists():
            data = w.items.read_bytes()
            assert not data or data.endswith(b"\n"), f"worker {w.n}: torn last line"
            out += [json.loads(line) for line in data.splitlines()]
    return out
