"""Fixtures of the feed tests: a small slow site in its own process (300
pages, 100 of them items, 10 ms each) and ``crawlmesh crawl spiders.shop``
subprocesses run against it."""

from __future__ import annotations

import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ITEMS = 100  # the site's item pages (every third of 300)


TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shop_url() -> Iterator[str]:
    site = [sys.executable, str(TESTS / "sites.py"), "generated", "--pages", "300"]
    proc = subprocess.Popen([*site, "--delay", "0.01"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the site printed no URL within 30 s"
        yield proc.stdout.readline().strip() + "/p/0"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture
def project(cli_project: Path) -> Path:
    shutil.copy(Path(__file__).with_name("spider_shop.py"), cli_project / "spiders" / "shop.py")
    return cli_project


class Run:
    """One ``crawlmesh crawl spiders.shop`` subprocess (stderr to a file)."""

    def __init__(self, cli: Path, project: Path, env: dict[str, str], url: str, *args: str):
        self.project = project
        self.stderr_path = project / f"stderr-{time.monotonic_ns()}.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [str(cli), "crawl", "spiders.shop", "-a", f"start_url={url}", "-q", *args],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )

    def wait(self, timeout: float = 60) -> tuple[int, bytes]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"crawl still running {timeout} s later:\n{self.stderr()}")
        return self.proc.returncode, out

    def wait_for(self, path: Path, marker: bytes, count: int, timeout: float = 30) -> None:
        """Poll until ``path`` holds ``marker`` ``count`` times."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"crawl exited early ({self.proc.returncode}):\n{self.stderr()}")
            if path.exists() and path.read_bytes().count(marker) >= count:
                return
            time.sleep(0.01)
        pytest.fail(f"fewer than {count} items after {timeout} s:\n{self.stderr()}")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def shop(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], shop_url: str
) -> Iterator[Any]:
    """``shop(*args)`` starts a crawl of the shop site; all are killed at teardown."""
    runs: list[Run] = []

    def start(*args: str, url: str = shop_url) -> Run:
        run = Run(crawlmesh_cli, project, cli_env, url, *args)
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.close()


def run_cli(crawlmesh_cli: Path, project: Path, env: dict[str, str], *args: str) -> Any:
    return subprocess.run(
        [str(crawlmesh_cli), *args],
        cwd=project,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
