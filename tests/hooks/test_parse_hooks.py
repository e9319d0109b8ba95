"""Parse hooks: start requests and callback output, dropped, replaced and
failing, each accounted for; and Scrapy's ``start_requests()``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crawling import run_engine
from crawlmesh import Request, Response, Spider
from sites import GeneratedSite

from .shop import ITEMS, Shop, not_404, number, page_of

NO_ROBOTS = {"robots.obey": False, "progress_interval": 0}


class Shape:
    """Drops links to pages over 30, turns items into (title, sku) pairs,
    and fails on the item of page 12."""

    def __init__(self) -> None:
        self.starts: list[str] = []

    def on_start(self, request: Request) -> Request:
        self.starts.append(request.url)
        return request

    async def on_output(self, response: Response | None, output: Any) -> Any:
        if isinstance(output, Request):
            page = page_of(output)
            return None if page is not None and page > 30 else output
        if number(output) == 12:
            raise RuntimeError("no pairs for twelve")
        return {"pair": [output["title"], output["sku"]]}


async def test_output_hooks_drop_replace_and_fail_with_accounting(
    shop: GeneratedSite, shop_url: str, tmp_path: Path
) -> None:
    hook = Shape()
    crawl, _ = await run_engine(Shop(shop_url, parse_hooks=[hook]), tmp_path, NO_ROBOTS)
    assert hook.starts == [shop_url + "/p/0"]
    assert not [h for h in shop.hits if (p := h.partition("/p/")[2]).isdigit() and int(p) > 30]
    pairs = sorted(i["pair"][0] for i in crawl.items)
    expected = sorted(f"Item {n}" for n in range(0, 31, 3) if n != 12)
    assert pairs == expected
    errors = not_404(crawl.errors)
    assert [(e["kind"], e["url"].rpartition("/")[2]) for e in errors] == [("hook_error", "12")]
    assert "Shape.on_output raised RuntimeError: no pairs for twelve" in errors[0]["reason"]
    assert crawl.stats.filtered["dropped_by_hook"] > 0
    assert crawl.stats.hook_errors == {"Shape.on_output": 1}


class NoStart:
    def on_start(self, request: Request) -> None:
        return None


async def test_a_start_hook_can_drop_every_start_request(
    shop: GeneratedSite, shop_url: str, tmp_path: Path
) -> None:
    crawl, _ = await run_engine(Shop(shop_url, parse_hooks=[NoStart()]), tmp_path, NO_ROBOTS)
    assert shop.hits == []
    assert crawl.stats.filtered == {"dropped_by_hook": 1}
    assert crawl.items == []


class Legacy(Spider):
    """A Scrapy-style spider: ``start_requests()`` and no ``start()``."""

    name = "legacy"

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def start_requests(self) -> Iterator[Request]:
        for n in (0, 3, 6):
            yield Request(f"{self.base}/p/{n}", callback=self.parse_item)

    def parse_item(self, response: Response) -> Iterator[Any]:
        yield {"title": response.css("h1.title::text").get()}


async def test_start_requests_is_read_when_there_is_no_start(shop_url: str, tmp_path: Path) -> None:
    crawl, _ = await run_engine(Legacy(shop_url), tmp_path, NO_ROBOTS)
    assert crawl.titles() == {"Item 0", "Item 3", "Item 6"}
    assert ITEMS > 3
