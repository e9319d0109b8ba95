"""The example crawl the Kubernetes manifests run: a shop's product pages.

Replace it with your own spider; its ``name`` is the crawl's Redis
namespace (the backlog exporter's ``--namespace``).
"""

from collections.abc import AsyncIterator

from crawlmesh import Request, Response, Spider


class Shop(Spider):
    name = "shop"
    start_url = "https://shop.example/"

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[object]:
        title = response.css("h1.title::text").get()
        if title is not None:
            yield {"url": response.url, "title": title, "price": response.css(".price::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
