"""Whole crawls in process: a spider over a list of URLs and a helper that runs one.

``run_spider`` builds an :class:`~crawlmesh.Engine` from settings layered as
``("test", settings)``, writes items and errors as JSON lines under the test's
``tmp_path`` and reads them back, so a test asserts on what a user would get.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from crawlmesh import CrawlStats, Engine, JsonLinesWriter, Request, Response, Spider
from crawlmesh._settings import load_settings


class Pages(Spider):
    """Fetches ``urls`` and yields one item per page: its URL and the node that
    fetched it.

    Args:
        urls: the start URLs, in order (duplicates are filtered unless
            ``dont_filter``).
        method: the start requests' method.
        dont_filter: let the start requests through the dupe filter.
        follow: also follow every link of every page.
    """

    name = "pages"

    def __init__(
        self,
        urls: list[str],
        *,
        method: str = "GET",
        dont_filter: bool = False,
        follow: bool = False,
    ) -> None:
        super().__init__()
        self.urls, self.method = urls, method
        self.dont_filter, self.follow = dont_filter, follow

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url, method=self.method, dont_filter=self.dont_filter)

    def parse(self, response: Response) -> Iterator[Any]:
        yield {"url": response.url, "node": response.node}
        if self.follow:
            yield from response.follow_all(css="a")


class Crawl(NamedTuple):
    """What a crawl left: its stats and the items and errors files, decoded."""

    stats: CrawlStats
    items: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    def errors_for(self, url: str) -> list[dict[str, Any]]:
        return [e for e in self.errors if e["url"] == url]

    def titles(self) -> set[str]:
        return {i["title"] for i in self.items if i.get("title") is not None}


async def run_engine(
    spider: Spider,
    tmp_path: Path,
    settings: dict[str, Any],
    *,
    nodes: list[Any] | None = None,
) -> tuple[Crawl, Engine]:
    """:func:`run_spider`, and the engine it ran (for counters the stats do not
    carry); ``settings`` is a dict, so it may hold a ``nodes`` key of its own."""
    out, err = tmp_path / "items.jsonl", tmp_path / "errors.jsonl"
    items, errors = JsonLinesWriter(out), JsonLinesWriter(err)
    engine = Engine(spider, load_settings([("test", settings)]), items=items, errors=errors)
    if nodes is not None:
        engine.use_nodes(nodes)
    try:
        stats = await engine.run()
    finally:
        items.close()
        errors.close()
    decode = msgspec.json.decode
    crawl = Crawl(
        stats,
        [decode(line) for line in out.read_bytes().splitlines()],
        [decode(line) for line in err.read_bytes().splitlines()],
    )
    return crawl, engine


async def run_spider(
    spider: Spider, tmp_path: Path, *, nodes: list[Any] | None = None, **settings: Any
) -> Crawl:
    """Crawl with ``settings`` (through the ``nodes`` mesh, if given)."""
    crawl, _ = await run_engine(spider, tmp_path, settings, nodes=nodes)
    return crawl
