"""The spider the CLI and shutdown tests run (copied into ``./spiders/`` of a
temporary project, so ``crawlmesh crawl spiders.follow`` resolves it from the
current directory).

It follows every link and yields ``{"sku": ..., "url": ...}`` for each page
with a ``span.sku``. ``-a hang_url=URL`` adds a first request to a URL that
never answers (to keep a graceful shutdown waiting). ``-a start_pause=S``
makes ``start()`` wait S seconds before its request (a slow seeder).
"""

from collections.abc import AsyncIterator

import trio

from crawlmesh import Request, Response, Spider


class Follow(Spider):
    name = "follow"
    start_url = ""
    hang_url = ""
    start_pause = "0"

    async def start(self) -> AsyncIterator[Request]:
        if self.hang_url:
            yield Request(self.hang_url)
        await trio.sleep(float(self.start_pause))
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[object]:
        sku = response.css("span.sku::text").get()
        if sku is not None:
            yield {"sku": sku, "url": response.url}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
