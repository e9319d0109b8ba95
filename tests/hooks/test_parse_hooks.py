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

    async def on_output(self, response: Response | None, outputs: list[Any]) -> Any:
        for output in outputs:
            if isinstance(output, Request):
                page = page_of(output)
                if page is None or page <= 30:
                    yield output
            elif number(output) == 12:
                raise RuntimeError("no pairs for twelve")
            else:
                yield {"pair": [output["title"], output["sku"]]}


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
    # Page 12's outputs are written off together: its item, and its links.
    errors = not_404(crawl.errors)
    assert {e["kind"] for e in errors} == {"hook_error"}
    assert all(
        "Shape.on_output raised RuntimeError: no pairs for twelve" in e["reason"] for e in errors
    )
    items_lost = [e for e in errors if e["reason"].startswith("1 item(s) lost")]
    assert [e["url"] for e in items_lost] == [shop_url + "/p/12"]
    links = [e for e in errors if e not in items_lost]
    assert links
    assert {e["referer"] for e in links} == {shop_url + "/p/12"}
    assert crawl.stats.filtered["dropped_by_hook"] > 0
    assert crawl.stats.hook_errors == {"Shape.on_output": 1}


class Counting:
    """One call per page, whatever the page yields; returns None: no change."""

    def __init__(self) -> None:
        self.calls = 0
        self.outputs = 0

    def on_output(self, response: Response | None, outputs: list[Any]) -> None:
        self.calls += 1
        self.outputs += len(outputs)


class NotIterable:
    def on_output(self, response: Response | None, outputs: list[Any]) -> int:
        return 3


async def test_output_hooks_run_once_per_page(shop_url: str, tmp_path: Path) -> None:
    counting = Counting()
    crawl, _ = await run_engine(Shop(shop_url, parse_hooks=[counting]), tmp_path, NO_ROBOTS)
    # Every page whose callback ran (the shop's broken links are 404s: errors, no callback).
    assert counting.calls == crawl.stats.pages - len(crawl.errors) > 0
    assert counting.outputs > 10 * counting.calls  # links and items, all in one call
    assert crawl.stats.items == ITEMS


async def test_an_output_hook_that_returns_no_outputs_fails_by_name(
    shop_url: str, tmp_path: Path
) -> None:
    spider = Shop(shop_url, parse_hooks=[NotIterable()])
    crawl, _ = await run_engine(spider, tmp_path, NO_ROBOTS)
    # The start page's outputs (its item, its links) are written off: nothing more is fetched.
    assert (crawl.items, crawl.stats.pages) == ([], 1)
    assert {e["kind"] for e in crawl.errors} == {"hook_error"}
    message = "NotIterable.on_output returned int; expected outputs or None"
    assert all(message in e["reason"] for e in crawl.errors)
    lost = [e["url"] for e in crawl.errors if e["reason"].startswith("1 item(s) lost")]
    assert lost == [shop_url + "/p/0"]


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
