from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio.testing
from hypothesis import settings as hypothesis_settings

from crawlmesh import open_site_server
from crawlmesh._util._log import configure_logging
from sites import GeneratedSite, HostileSite

ROOT = Path(__file__).resolve().parent.parent

# No per-example deadlines: timing belongs in bench/, and a loaded CI machine
# must not fail a property. CI runs a fixed example sequence, so a red run can
# be reproduced; local runs keep exploring.
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True)
# `pytest --hypothesis-profile=stress` hunts harder before a release.
hypothesis_settings.register_profile("stress", deadline=None, max_examples=2000)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def loopback_clock() -> trio.testing.MockClock:
    """Virtual time for tests that talk over loopback (pytest-trio runs the
    test and its async fixtures on this clock).

    The clock jumps to the next deadline only once every task has been blocked
    for 50 ms of real time: loopback I/O, far quicker, runs in real time while
    sleeps (delays, rate waits, backoff, timeouts) pass instantly. Tests with no
    I/O use pytest-trio's ``autojump_clock`` (threshold 0) instead.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging("error")


@pytest.fixture
def warnings_logged() -> Iterator[list[dict[str, Any]]]:
    """Log entries (warnings and up) emitted during the test."""
    configure_logging("warning")
    with structlog.testing.capture_logs() as entries:
        yield entries


@pytest.fixture
def generated() -> GeneratedSite:
    return GeneratedSite(2000)


@pytest.fixture
async def generated_url(generated: GeneratedSite) -> AsyncIterator[str]:
    async with open_site_server(generated.handle) as base:
        yield base


@pytest.fixture
def hostile() -> HostileSite:
    return HostileSite()


@pytest.fixture
async def hostile_url(hostile: HostileSite) -> AsyncIterator[str]:
    async with open_site_server(hostile.handle) as base:
        yield base


def start_server_process(script: str, *args: str) -> Iterator[str]:
    """Run ``tests/<script>`` and yield the URL it prints on its first line."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / script), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Bounded: a server that never prints fails the fixture, not the session.
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"{script} printed no URL within 30 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"unexpected first line: {url!r}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # else a ResourceWarning, an error under -W error


def _start_site(*args: str) -> Iterator[str]:
    yield from start_server_process("sites.py", *args)


@pytest.fixture(scope="session")
def slow_site_url() -> Iterator[str]:
    """A 2,000-page generated site in its own process, 20 ms per page."""
    yield from _start_site("generated", "--pages", "2000", "--delay", "0.02")


@pytest.fixture(scope="session")
def site_process_url() -> Iterator[str]:
    """A 2,000-page generated site in its own process."""
    yield from _start_site("generated", "--pages", "2000")


@pytest.fixture(scope="session")
def hostile_process_url() -> Iterator[str]:
    """The hostile site in its own process (``/never`` never answers)."""
    yield from _start_site("hostile")


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "tests")
    return env


@pytest.fixture
def crawlmesh_cli() -> Path:
    """The venv's ``crawlmesh`` console script (there is no ``__main__``)."""
    script = Path(sys.executable).parent / "crawlmesh"
    assert script.is_file(), f"console script not installed: {script}"
    return script


@pytest.fixture
def cli_project(tmp_path: Path) -> Path:
    """A project directory to run the CLI from: ``./spiders/follow.py`` holds
    the spider of ``tests/cli_spiders/follow.py``."""
    project = tmp_path / "project"
    spiders = project / "spiders"
    spiders.mkdir(parents=True)
    (spiders / "__init__.py").write_text("")
    shutil.copy(ROOT / "tests" / "cli_spiders" / "follow.py", spiders / "follow.py")
    return project


# -- forward proxies (tests/proxy_server.py), loopback only ----------------------

PROXY_USER = "crawler-7"
PROXY_PASSWORD = "s3cr3t-p@ss:w/rd"  # needs percent-encoding in a URL


@pytest.fixture(scope="session")
def proxy_url() -> Iterator[str]:
    """An open proxy (no credentials needed)."""
    yield from start_server_process("proxy_server.py")


@pytest.fixture(scope="session")
def auth_proxy_url() -> Iterator[str]:
    """A proxy that wants ``PROXY_USER:PROXY_PASSWORD`` (the URL carries none)."""
    yield from start_server_process("proxy_server.py", "--auth", f"{PROXY_USER}:{PROXY_PASSWORD}")


@pytest.fixture(scope="session")
def failing_proxy_url() -> Iterator[str]:
    """A proxy that answers every proxied request with its own 503."""
    yield from start_server_process("proxy_server.py", "--fail-rate", "1.0")
