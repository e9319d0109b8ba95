"""The spider the CLI and shutdown tests run (copied into ``./spiders/`` of a
temporary project, so ``crawlmesh crawl spiders.follow`` resolves it from the
current directory).

It follows every link and yields ``{"sku": ..., "url": ...}`` for each page
with a ``span.sku``. ``-a hang_url=URL`` adds a first request to a URL that
never answers (to keep a graceful shutdown waiting).
"""

from collections.abc import AsyncIterator

from crawlmesh import Request, Response, Spider


class Follow(Spider):
    name = "follow"
    start_url = ""
    hang_url = ""

    async def start(self) -> AsyncIterator[Request]:
        if self.hang_url:
            yield Request(self.hang_url)
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[object]:
        sku = response.css("span.sku::text").get()
        if sku is not None:
            yield {"sku": sku, "url": response.url}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
