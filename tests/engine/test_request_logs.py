"""The engine's log lines about requests, in process: each carries url,
domain, node and attempt (tests/test_log_secrets.py checks a whole crawl
through a mesh), and no debug line shows above debug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from crawling import Pages, run_engine
from crawlmesh import Response, SiteRequest, SiteResponse, open_site_server
from crawlmesh._util._log import configure_logging


class Items(Pages):
    """Three items per page (so that ``max_items=1`` drops some); its
    callback raises on /raise."""

    def parse(self, response: Response) -> Iterator[Any]:
        if response.url.endswith("/raise"):
            raise ValueError("a bug in the spider")
        for n in range(3):
            yield {"url": response.url, "n": n}


async def site(request: SiteRequest, stream: Any) -> SiteResponse:
    if request.target == "/boom":
        return SiteResponse(500, b"no")
    return SiteResponse(200, b"<p>ok</p>")


async def crawl_logs(tmp_path: Path, level: str, **settings: Any) -> list[dict[str, Any]]:
    """The log entries of a crawl of five pages (/boom fails) at ``level``."""
    configure_logging(level)
    async with open_site_server(site) as base:
        urls = [f"{base}/p{i}" for i in range(3)] + [f"{base}/boom", f"{base}/raise"]
        layer = {"robots.obey": False, "retry.backoff_base": 0, **settings}
        with structlog.testing.capture_logs() as logs:
            await run_engine(Items(urls), tmp_path, layer)
    return logs


async def test_request_lines_carry_url_domain_node_and_attempt(tmp_path: Path) -> None:
    logs = await crawl_logs(tmp_path, "debug")
    events = {entry["event"] for entry in logs}
    assert {"fetched", "retrying", "request failed", "callback raised"} <= events
    for entry in logs:
        if "url" in entry:
            assert entry["domain"] == "127.0.0.1", entry
            assert {"node", "attempt"} <= set(entry), entry
    fetched = [e for e in logs if e["event"] == "fetched"]
    assert {e["node"] for e in fetched} == {"direct"}
    boom = [e for e in fetched if e["url"].endswith("/boom")]
    assert [e["attempt"] for e in boom] == [1, 2, 3]  # max_attempts
    assert all(e["status"] == 500 and e["ms"] >= 0 for e in boom)
    failed = next(e for e in logs if e["event"] == "request failed" and e["url"].endswith("boom"))
    assert (failed["attempt"], failed["node"], failed["kind"]) == (3, "direct", "http_error")
    retries = [e for e in logs if e["event"] == "retrying"]
    assert [e["attempt"] for e in retries] == [1, 2]  # the attempt that failed


async def test_items_dropped_over_max_items_are_logged_at_debug(tmp_path: Path) -> None:
    logs = await crawl_logs(tmp_path, "debug", max_items=1)
    dropped = [e for e in logs if e["event"] == "item dropped: over max_items"]
    assert dropped
    assert all(e["domain"] == "127.0.0.1" and "node" in e and "attempt" in e for e in dropped)


async def test_no_debug_lines_above_debug(tmp_path: Path) -> None:
    logs = await crawl_logs(tmp_path, "info")
    events = {entry["event"] for entry in logs}
    assert "fetched" not in events
    assert "retrying" in events
