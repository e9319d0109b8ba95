"""The engine's log lines about requests, in process: each carries url,
domain, node and attempt (tests/test_log_secrets.py checks a whole crawl
through a mesh), and no debug line shows above debug."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from crawlmesh import (
    Engine,
    JsonLinesWriter,
    Request,
    Response,
    SiteRequest,
    SiteResponse,
    Spider,
    open_site_server,
)
from crawlmesh._settings import load_settings
from crawlmesh._util._log import configure_logging


class Items(Spider):
    """Three items per page; /boom fails, its callback raises on /raise."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url)

    def parse(self, response: Response) -> Any:
        if response.url.endswith("/raise"):
            raise ValueError("a bug in the spider")
        for n in range(3):
            yield {"url": response.url, "n": n}


async def site(request: SiteRequest, stream: Any) -> SiteResponse:
    if request.target == "/boom":
        return SiteResponse(500, b"no")
    return SiteResponse(200, b"<p>ok</p>")


async def crawl(tmp_path: Path, level: str, **settings: Any) -> list[dict[str, Any]]:
    configure_logging(level)
    async with open_site_server(site) as base:
        urls = [f"{base}/p{i}" for i in range(3)] + [f"{base}/boom", f"{base}/raise"]
        items = JsonLinesWriter(tmp_path / "items.jsonl")
        layers = [("test", {"robots.obey": False, "retry.backoff_base": 0, **settings})]
        engine = Engine(Items(urls), load_settings(layers), items=items)
        try:
            with structlog.testing.capture_logs() as logs:
                await engine.run()
        finally:
            items.close()
    return logs


async def test_request_lines_carry_url_domain_node_and_attempt(tmp_path: Path) -> None:
    logs = await crawl(tmp_path, "debug")
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
    logs = await crawl(tmp_path, "debug", max_items=1)
    dropped = [e for e in logs if e["event"] == "item dropped: over max_items"]
    assert dropped
    assert all(e["domain"] == "127.0.0.1" and "node" in e and "attempt" in e for e in dropped)


async def test_no_debug_lines_above_debug(tmp_path: Path) -> None:
    logs = await crawl(tmp_path, "info")
    events = {entry["event"] for entry in logs}
    assert "fetched" not in events
    assert "retrying" in events
