"""``crawlmesh backlog``: a shared crawl's backlog as JSON and as Prometheus
metrics, read from a real redis-server between two workers' runs."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from distributed.redis_server import RedisServer
from distributed.workers import Site, Worker, start_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from start_site(tmp_path, 1000)


def backlog(cli: Path, redis: RedisServer) -> dict[str, object]:
    out = subprocess.run(
        [str(cli), "backlog", "--backend", redis.url, "--namespace", "follow"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    data: dict[str, object] = json.loads(out.stdout)
    return data


def scrape(cli: Path, redis: RedisServer, tmp_path: Path) -> dict[str, float]:
    err = tmp_path / "backlog.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(cli), "backlog", "--backend", redis.url, "--namespace", "follow",
             "--serve", "127.0.0.1:0"],
            stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while "serving" not in err.read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            url = err.read_text().split("serving ")[1].split()[0]
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
        finally:
            proc.terminate()
            proc.wait(10)
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            state = sample.labels.get("state")
            values[sample.name + (f"[{state}]" if state else "")] = sample.value
    return values


def test_backlog_between_two_runs(
    redis: RedisServer,
    site: Site,
    workers: Callable[..., Worker],
    crawlmesh_cli: Path,
    tmp_path: Path,
) -> None:
    first = workers(f"{site.url}/p/0", redis.url, "--max-pages", "100", "-q")
    assert first.wait() == 0, first.stderr()
    # Stopped by --max-pages: what it had claimed went back to the queue.
    state = backlog(crawlmesh_cli, redis)
    assert state["seeded"] is True
    assert state["leased"] == 0
    assert state["workers"] == 0
    assert isinstance(state["queued"], int)
    assert state["queued"] > 0
    assert state["finished"] is False
    metrics = scrape(crawlmesh_cli, redis, tmp_path)
    assert metrics["crawlmesh_backlog_up"] == 1
    assert metrics["crawlmesh_backlog_requests[queued]"] == state["queued"]
    assert metrics["crawlmesh_backlog_requests[leased]"] == 0
    assert metrics["crawlmesh_backlog_finished"] == 0

    second = workers(f"{site.url}/p/0", redis.url, "-q")
    assert second.wait() == 0, second.stderr()
    state = backlog(crawlmesh_cli, redis)
    assert state["finished"] is True
    assert state["queued"] == state["leased"] == 0
    # Between them, the two runs fetched each page once.
    hits = site.page_hits()
    assert set(hits) == {f"/p/{n}" for n in range(1000)}
    assert max(hits.values()) == 1


def test_a_taken_serve_address_is_one_line(crawlmesh_cli: Path, redis: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run(
            [str(crawlmesh_cli), "backlog", "--backend", redis.url, "--namespace", "x",
             "--serve", bind],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"crawlmesh: error: --serve {bind}:" in done.stderr
    assert "Traceback" not in done.stderr
