"""A worker that cannot join a shared crawl says why in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from distributed.redis_server import RedisServer, free_port
from distributed.workers import Worker


def run(
    cli: Path, project: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cli), "crawl", "spiders.follow", "-a", "start_url=http://127.0.0.1:9/", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_an_unreachable_redis_is_one_line_and_exit_1(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    done = run(crawlmesh_cli, cli_project, cli_env, "--backend", url, "-o", "items.jsonl")
    assert done.returncode == 1
    assert "crawlmesh: error: cannot reach Redis at redis://:***@127.0.0.1:" in done.stderr
    assert "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr


def test_jobdir_and_backend_exclude_each_other(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], redis: RedisServer
) -> None:
    done = run(crawlmesh_cli, cli_project, cli_env, "--backend", redis.url, "--jobdir", "job")
    assert done.returncode == 2
    assert "--jobdir and --backend exclude each other" in done.stderr


def test_a_bad_backend_url_is_a_settings_error(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    done = run(crawlmesh_cli, cli_project, cli_env, "--backend", "http://127.0.0.1:6379/0")
    assert done.returncode == 2
    assert "backend.url must be empty or a URL of redis://" in done.stderr


def test_two_live_workers_may_not_share_an_items_file(
    redis: RedisServer, workers: Callable[..., Worker], crawlmesh_cli: Path,
    cli_project: Path, cli_env: dict[str, str], slow_site_url: str,
) -> None:  # fmt: skip
    first = workers(f"{slow_site_url}/p/0", redis.url, "-s", "concurrency=2")
    first.wait_for_items(5)
    done = run(crawlmesh_cli, cli_project, cli_env, "--backend", redis.url, "-o", str(first.items))
    assert done.returncode == 1
    assert "another live worker" in done.stderr
    assert "give each worker its own -o" in done.stderr
