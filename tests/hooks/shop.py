"""A small generated shop for the hook tests, and a spider over it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from crawlmesh import Request, Response, Spider

PAGES = 60
"""Pages of the shop (``GeneratedSite(PAGES)``): every third one is an item page."""
ITEMS = len(range(0, PAGES, 3))


class Shop(Spider):
    """Follows every link from /p/0; one item per item page (title, price, sku)."""

    name = "shop"

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base + "/p/0"]

    def parse(self, response: Response) -> Iterator[Any]:
        title = response.css("h1.title::text").get()
        if title is not None:
            yield {
                "title": title,
                "price": response.css("p.price::text").get(),
                "sku": response.css("span.sku::text").get(),
            }
        for link in response.css("a::attr(href)").getall():
            yield response.follow(link)


def number(item: dict[str, Any]) -> int:
    """The page number of an item (from its title, "Item N")."""
    return int(item["title"].split()[-1])


def page_of(request: Request) -> int | None:
    """The page number a request is for (/p/N), if it is for a page."""
    head, _, tail = urlsplit(request.url).path.removeprefix("/").partition("/")
    return int(tail) if head == "p" and tail.isdigit() else None


def not_404(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors of a crawl of the shop but its broken links' (every tenth page links one)."""
    return [e for e in errors if e["kind"] != "http_error"]
