"""A worker that stops before the crawl is over exits non-zero, with a
status that says why (a scheduler must not count the crawl as done)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from crawlmesh._cli import FINISH_EXIT_CODES
from distributed.redis_server import RedisServer
from distributed.workers import Worker

ARGS = ("-s", "concurrency=2", "-s", "backend.lease_ttl=2", "-s", "progress_interval=0")
P = "crawlmesh:{follow}:"


def live_workers(redis: RedisServer) -> list[str]:
    reply = redis.command("ZRANGE", P + "workers", "0", "-1", whole=True).decode()
    return [line for line in reply.split("\r\n") if line and line[0] not in "*$"]


def test_a_fenced_worker_exits_4(
    redis: RedisServer, workers: Callable[..., Worker], slow_site_url: str
) -> None:
    w = workers(f"{slow_site_url}/p/0", redis.url, *ARGS, "--stats", "stats.json")
    w.wait_for_items(3)
    # What the other workers do to one silent past its lease.
    for worker_id in live_workers(redis):
        redis.command("SADD", P + "dead", worker_id)
    assert w.wait() == 4, w.stderr()
    assert "stopping" in w.log()
    stats = json.loads((w.items.parent / "stats.json").read_text())
    assert stats["finish_reason"] == "fenced"


def test_a_worker_whose_script_redis_refuses_exits_3(
    redis: RedisServer, workers: Callable[..., Worker], slow_site_url: str
) -> None:
    w = workers(f"{slow_site_url}/p/0", redis.url, *ARGS)
    w.wait_for_items(3)
    # A key of the crawl's clobbered with the wrong type: every sync fails.
    redis.command("DEL", P + "pause")
    redis.command("SET", P + "pause", "not a hash")
    assert w.wait() == 3, w.stderr()
    assert "Redis refused the crawl's script; stopping" in w.log()


def test_a_page_limit_exits_0(
    redis: RedisServer, workers: Callable[..., Worker], slow_site_url: str
) -> None:
    w = workers(f"{slow_site_url}/p/0", redis.url, *ARGS, "--max-pages", "5")
    assert w.wait() == 0, w.stderr()
    assert "crawl max_pages" in w.log()  # (a limit the user set, per worker)


def test_the_exit_statuses_are_documented(crawlmesh_cli: Path) -> None:
    done = subprocess.run(
        [str(crawlmesh_cli), "crawl", "--help"], capture_output=True, text=True, timeout=30
    )
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for reason, status in FINISH_EXIT_CODES.items():
        if status:
            assert f"  {status}    {reason}" in done.stdout or status == 1, reason
            assert f"| {status} | `{reason}`" in readme or status == 1, reason
    assert "exit status:" in done.stdout
    assert "130" in done.stdout
