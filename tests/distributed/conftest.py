from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distributed.redis_server import REDIS_SERVER, RedisServer
from distributed.workers import Worker


def _server(directory: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        if os.environ.get("CI"):  # .ci/run installs it: a missing binary is a failure there
            pytest.fail("no redis-server binary, and CI is set")
        pytest.skip("no redis-server binary on this machine (apt-get install redis-server)")
    server = RedisServer(directory, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, persistence off."""
    yield from _server(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis(redis_session: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    assert redis_session.command("FLUSHALL") == b"+OK"
    return redis_session


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, with an fsynced append-only file."""
    directory = tmp_path / "redis"
    directory.mkdir()
    yield from _server(directory, persistent=True)


@pytest.fixture
def workers(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``workers(start_url, backend, *args)``; all are
    killed at teardown."""
    started: list[Worker] = []

    def start(start_url: str, backend: str, *args: str) -> Worker:
        w = Worker(crawlmesh_cli, cli_project, cli_env, len(started), start_url, backend, *args)
        started.append(w)
        return w

    try:
        yield start
    finally:
        for w in started:
            w.close()
