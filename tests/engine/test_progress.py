"""Progress lines while a crawl runs, in virtual time."""

from __future__ import annotations

from pathlib import Path

import structlog
import trio
import trio.testing

from crawling import Pages, run_spider
from crawlmesh import open_site_server
from crawlmesh._util._log import configure_logging
from shaping.test_engine_shaping import Recorder


async def test_progress_lines_report_pages_and_queue(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    configure_logging("info")  # the suite's default is errors only
    site = Recorder()
    async with open_site_server(site.handle) as base:
        with structlog.testing.capture_logs() as logs:
            await run_spider(
                Pages([f"{base}/p{i}" for i in range(10)]),
                tmp_path,
                **{
                    "robots.obey": False,
                    "progress_interval": 1.0,
                    "rates": {"127.0.0.1": {"rate": "2/s"}},
                },
            )
    lines = [entry for entry in logs if entry["event"] == "progress"]
    assert len(lines) >= 3  # ~4.5 virtual seconds at 2 pages/s
    pages = [entry["pages"] for entry in lines]
    assert pages == sorted(pages)
    assert pages[0] < 10
    assert lines[0]["queued"] > 0
    assert all(entry["pages_per_s"] <= 3 for entry in lines)
