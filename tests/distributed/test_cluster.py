"""A crawl on a three-master Redis Cluster: the crawl's hash slot moved to
another node while workers run (a reshard) is a pause, not an error; and a
plain ``redis://`` URL pointed at a Cluster node says what to use instead."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distributed.redis_server import Cluster
from distributed.workers import Site, Worker, items_of, start_site

PAGES = 1500
ARGS = ("-s", "concurrency=8", "-s", "backend.lease_ttl=4", "-s", "progress_interval=0")
SLOT_KEY = "crawlmesh:{follow}:seen"

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from start_site(tmp_path, PAGES, delay=0.005)


def test_a_slot_moved_mid_crawl_stops_no_worker(
    cluster: Cluster, site: Site, workers: Callable[..., Worker]
) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster.nodes[0].port}"
    crawl = [workers(f"{site.url}/p/0", url, *ARGS) for _ in range(2)]
    for w in crawl:
        w.wait_for_items(20)
    slot = cluster.slot_of(SLOT_KEY)
    source = cluster.owner(slot)
    target = next(n for n in cluster.nodes if n is not source)
    # One key at a time, 50 ms apart: many syncs meet the slot half moved.
    moved = cluster.move_slot(slot, target, batch=1, pause=0.05)
    assert moved >= 10
    assert cluster.owner(slot) is target
    for w in crawl:
        assert w.wait() == 0, w.stderr()
    text = "".join(w.log() for w in crawl)
    assert "Redis Cluster slot moving; retrying" in text
    assert "backend_error" not in text
    skus = [item["sku"] for item in items_of(crawl)]
    assert len(skus) == len(set(skus)), "an item was delivered twice"
    assert set(skus) == {f"SKU-{n:06d}" for n in range(0, PAGES, 3)}
    assert max(site.page_hits().values()) == 1
    assert target.command("EXISTS", SLOT_KEY) == b":1"
    assert source.command("DBSIZE") == b":0"


def test_a_plain_url_at_a_cluster_node_says_it_is_a_cluster(
    cluster: Cluster, crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    slot = cluster.slot_of(SLOT_KEY)
    other = next(n for n in cluster.nodes if n is not cluster.owner(slot))
    done = subprocess.run(
        [str(crawlmesh_cli), "crawl", "spiders.follow", "-a", "start_url=http://127.0.0.1:9/",
         "--backend", f"redis://127.0.0.1:{other.port}/0", "-o", "items.jsonl"],
        cwd=cli_project, env=cli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"redis://127.0.0.1:{other.port}/0 is a node of a Redis Cluster" in done.stderr
    assert f"--backend redis+cluster://127.0.0.1:{other.port}" in done.stderr
    assert "Traceback" not in done.stderr
