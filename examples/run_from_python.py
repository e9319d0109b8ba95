"""Run a spider from Python against the demo shop, without the CLI.

python examples/run_from_python.py
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio

from crawlmesh import Engine, JsonLinesWriter, Request, Response, Settings, Spider, open_site_server
from crawlmesh._cli._demosite import DemoSite


class Prices(Spider):
    name = "prices"

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.base + "/")

    def parse(self, response: Response) -> Any:
        price = response.css("p.price::text").get()
        if price is not None:
            yield {"sku": response.css("span.sku::text").get(), "price": price}
        yield from response.follow_all(css="a")


async def main() -> None:
    site = DemoSite(books=40)
    async with open_site_server(site.handle) as base:
        items = JsonLinesWriter("prices.jsonl")
        engine = Engine(Prices(base), Settings(progress_interval=0), items=items)
        stats = await engine.run()
        items.close()
    print(stats.render())


if __name__ == "__main__":
    trio.run(main)
