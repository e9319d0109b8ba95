"""Several feeds on a shared crawl: Redis keeps each feed's committed
length, so a worker killed with -9 and started again cuts every feed back
to its own length, finishes it, and each item is in each feed once."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distributed.redis_server import RedisServer
from distributed.workers import Site, Worker, items_of, start_site

PAGES = 300
ITEMS = {f"SKU-{n:06d}" for n in range(0, PAGES, 3)}
ARGS = ("-s", "concurrency=4", "-s", "backend.lease_ttl=1", "-s", "progress_interval=0")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from start_site(tmp_path, PAGES, delay=0.01)


def test_a_worker_killed_and_started_again_finishes_every_feed(
    redis: RedisServer, site: Site, workers: Callable[..., Worker], cli_project: Path
) -> None:
    feeds = ("-o", "items.json", "-o", "items.xml")
    first = workers(f"{site.url}/p/0", redis.url, *ARGS, *feeds)
    first.wait_for_items(20)
    first.kill()
    time.sleep(1.5)  # its lease (and its claim on the feeds) expires
    second = workers(f"{site.url}/p/0", redis.url, *ARGS, *feeds)
    assert second.wait() == 0, second.stderr()
    lines = [item["sku"] for item in items_of([first, second])]
    assert sorted(lines) == sorted(ITEMS)  # each once, across the two JSON-lines files
    array = [item["sku"] for item in json.loads((cli_project / "items.json").read_bytes())]
    assert sorted(array) == sorted(ITEMS)
    root = ET.parse(cli_project / "items.xml").getroot()
    assert sorted(item.findtext("sku") for item in root) == sorted(ITEMS)
