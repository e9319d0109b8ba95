from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distributed.redis_server import REDIS_CLI, REDIS_SERVER, Cluster, RedisServer, SentinelServer
from distributed.workers import Worker


def _server(
    directory: Path, *, persistent: bool = False, extra: tuple[str, ...] = ()
) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        if os.environ.get("CI"):  # .ci/run installs it: a missing binary is a failure there
            pytest.fail("no redis-server binary, and CI is set")
        pytest.skip("no redis-server binary on this machine (apt-get install redis-server)")
    server = RedisServer(directory, persistent=persistent, extra=extra)
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
def cluster_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A one-node Redis Cluster holding every slot."""
    directory = tmp_path / "cluster"
    directory.mkdir()
    extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"))
    for server in _server(directory, extra=extra):
        assert server.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383") == b"+OK"
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in server.command("CLUSTER", "INFO", whole=True):
            assert time.monotonic() < deadline, "the cluster did not come up within 10 s"
            time.sleep(0.05)
        yield server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A Redis Cluster of three masters on free loopback ports."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server or redis-cli binary, and CI is set")
        pytest.skip("no redis-server or redis-cli on this machine (apt-get install redis-server)")
    directory = tmp_path / "cluster3"
    directory.mkdir()
    nodes = Cluster(directory)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.kill()


@pytest.fixture
def sentinel(tmp_path: Path, redis: RedisServer) -> Iterator[SentinelServer]:
    """A Sentinel watching the session's redis-server as ``mymaster``."""
    directory = tmp_path / "sentinel"
    directory.mkdir()
    server = SentinelServer(directory, redis)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, with an fsynced append-only file."""
    directory = tmp_path / "redis"
    directory.mkdir()
    yield from _server(directory, persistent=True)


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, persistence off (a restart empties it)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    yield from _server(directory)


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
