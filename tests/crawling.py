"""Whole crawls in process: the one spider over a list of URLs and the one
place a test builds an :class:`~crawlmesh.Engine`.

A test that crawls says what differs (the URLs, what an item holds, whether
links are followed, the settings, the mesh or backend) and reads back what a
user would get: ``run_spider``/``run_engine`` layer ``settings`` as
``("test", settings)``, write items and errors as JSON lines under the test's
``tmp_path`` and decode them into a :class:`Crawl`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, Unpack

import msgspec

from crawlmesh import CrawlStats, Engine, JsonLinesWriter, Request, Response, Spider, Transport
from crawlmesh._frontier import DupeFilter
from crawlmesh._settings import NodeSpec, load_settings
from crawlmesh._state import Backend

ItemOf = Callable[[Response], "dict[str, Any] | None"]
"""What a page yields as its item; ``None`` for no item."""

FieldsOf = Callable[[int], "dict[str, Any]"]
"""More :class:`~crawlmesh.Request` fields for the n-th start URL."""


def url_and_node(response: Response) -> dict[str, Any]:
    """The default item: the page's URL and the node that fetched it."""
    return {"url": response.url, "node": response.node}


def no_item(response: Response) -> None:
    """For a spider that only follows links."""
    return None


class Pages(Spider):
    """Fetches ``urls`` and yields one item per page (as ``item`` makes it).

    Links are followed one by one with ``response.follow``, as the README's
    spider does: a body that is not text then fails its callback (``css``
    raises), where ``follow_all`` would skip it quietly.

    Args:
        urls: the start URLs, in order (duplicates are filtered unless
            ``dont_filter``).
        follow: also follow every ``<a href>`` of every page.
        item: the page's item, or ``None`` for none; it runs before the links
            are followed, so one that raises stops them too.
        fields: more fields for each start request, by its index (a
            session, a region).
        method: the start requests' method.
        dont_filter: let the start requests through the dupe filter.
    """

    name = "pages"

    def __init__(
        self,
        urls: list[str],
        *,
        follow: bool = False,
        item: ItemOf = url_and_node,
        fields: FieldsOf | None = None,
        method: str = "GET",
        dont_filter: bool = False,
    ) -> None:
        super().__init__()
        self.urls, self.follow, self.item, self.fields = urls, follow, item, fields
        self.method, self.dont_filter = method, dont_filter

    async def start(self) -> AsyncIterator[Request]:
        for n, url in enumerate(self.urls):
            more = self.fields(n) if self.fields is not None else {}
            yield Request(url, method=self.method, dont_filter=self.dont_filter, **more)

    def parse(self, response: Response) -> Iterator[Any]:
        item = self.item(response)
        if item is not None:
            yield item
        if self.follow:
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)


def product(response: Response) -> dict[str, Any] | None:
    """A :class:`~sites.GeneratedSite` item page's title, price and SKU; no
    item for the site's other pages."""
    title = response.css("h1.title::text").get()
    if title is None:
        return None
    return {
        "title": title,
        "price": response.css("p.price::text").get(),
        "sku": response.css("span.sku::text").get(),
    }


def whole_site(base: str, item: ItemOf = product) -> Pages:
    """Every page of a :class:`~sites.GeneratedSite` from ``/p/0``, one item
    per product (the start request passes the dupe filter, as a spider's
    ``start_urls`` do)."""
    return Pages([base + "/p/0"], follow=True, item=item, dont_filter=True)


class Crawl(NamedTuple):
    """What a crawl left: its stats and the items and errors files, decoded."""

    stats: CrawlStats
    items: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @classmethod
    def read(cls, stats: CrawlStats, tmp_path: Path) -> Crawl:
        """The files :func:`built_engine` wrote under ``tmp_path``."""
        decode = msgspec.json.decode
        return cls(
            stats,
            [decode(line) for line in (tmp_path / "items.jsonl").read_bytes().splitlines()],
            [decode(line) for line in (tmp_path / "errors.jsonl").read_bytes().splitlines()],
        )

    def errors_for(self, url: str) -> list[dict[str, Any]]:
        return [e for e in self.errors if e["url"] == url]

    def titles(self) -> set[str]:
        return {i["title"] for i in self.items if i.get("title") is not None}


class Wiring(TypedDict, total=False):
    """What a test may hand the engine besides its settings (``None`` or
    left out: the default)."""

    nodes: list[NodeSpec] | None
    """A mesh to crawl through instead of the settings' nodes."""
    transport: Transport | None
    """A custom transport (the mesh's one direct node)."""
    backend: Backend | None
    """The crawl's state (a job directory, Redis); in memory by default."""
    dupefilter: DupeFilter | None
    """The in-memory backend's dupe filter."""


@contextmanager
def built_engine(
    spider: Spider, tmp_path: Path, settings: dict[str, Any], **wiring: Unpack[Wiring]
) -> Iterator[Engine]:
    """An engine that writes ``items.jsonl`` and ``errors.jsonl`` under
    ``tmp_path``, for a test that must reach it before or while it runs (to
    serve its metrics, say); the files are closed on the way out.

    Args:
        spider: what to crawl.
        tmp_path: where the items and errors files go.
        settings: the test's settings layer (it may hold ``nodes`` itself).
        **wiring: see :class:`Wiring`.
    """
    items = JsonLinesWriter(tmp_path / "items.jsonl")
    errors = JsonLinesWriter(tmp_path / "errors.jsonl")
    try:
        engine = Engine(
            spider,
            load_settings([("test", settings)]),
            items=items,
            errors=errors,
            transport=wiring.get("transport"),
            backend=wiring.get("backend"),
            dupefilter=wiring.get("dupefilter"),
        )
        nodes = wiring.get("nodes")
        if nodes is not None:
            engine.use_nodes(nodes)
        yield engine
    finally:
        items.close()
        errors.close()


async def run_engine(
    spider: Spider, tmp_path: Path, settings: dict[str, Any], **wiring: Unpack[Wiring]
) -> tuple[Crawl, Engine]:
    """:func:`run_spider`, and the engine it ran (for counters the stats do
    not carry); the arguments are :func:`built_engine`'s."""
    with built_engine(spider, tmp_path, settings, **wiring) as engine:
        stats = await engine.run()
    return Crawl.read(stats, tmp_path), engine


async def run_spider(
    spider: Spider, tmp_path: Path, /, *, nodes: list[NodeSpec] | None = None, **settings: Any
) -> Crawl:
    """Crawl with ``settings`` (through the ``nodes`` mesh, if given)."""
    crawl, _ = await run_engine(spider, tmp_path, settings, nodes=nodes)
    return crawl
