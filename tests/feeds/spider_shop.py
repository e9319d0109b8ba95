"""The spider the feed tests run (copied into ``./spiders/shop.py`` of a
temporary project): it follows every link of a generated site and yields,
for each item page, an item as a msgspec Struct, a dataclass or a dict in
turn, with a non-ASCII title."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from crawlmesh import Request, Response, Spider


class Product(msgspec.Struct):
    sku: str
    title: str
    price: float


@dataclass
class Listing:
    sku: str
    title: str
    price: float


class Shop(Spider):
    name = "shop"
    start_url = ""

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[object]:
        sku = response.css("span.sku::text").get()
        if sku is not None:
            n = int(sku.removeprefix("SKU-"))
            title = f"Café ☕ n°{n}"
            price = n + 0.99
            kind = n % 9
            if kind == 0:
                yield Product(sku, title, price)
            elif kind == 3:
                yield Listing(sku, title, price)
            else:
                yield {"sku": sku, "title": title, "price": price}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
