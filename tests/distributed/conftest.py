from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from distributed.redis_server import REDIS_SERVER, RedisServer


def _server(directory: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
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
