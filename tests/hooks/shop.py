"""A small generated shop for the hook tests, and a spider over it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from crawling import Pages, product
from crawlmesh import Request

PAGES = 60
"""Pages of the shop (``GeneratedSite(PAGES)``): every third one is an item page."""
ITEMS = len(range(0, PAGES, 3))


class Shop(Pages):
    """Every page of the shop from /p/0, one item per product (title, price,
    sku); keyword arguments set the spider's hooks (``pipelines=[...]``)."""

    name = "shop"

    def __init__(self, base: str, **hooks: Any) -> None:
        super().__init__([base + "/p/0"], follow=True, item=product, dont_filter=True)
        for kind, objects in hooks.items():
            setattr(self, kind, objects)


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
