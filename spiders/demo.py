"""The spider `crawlmesh demo` runs: it crawls the embedded demo bookshop.

`crawlmesh demo` serves the shop on loopback and runs this spider against it.
To run it against a copy of the site you serve yourself:

    crawlmesh crawl spiders.demo -a start_url=http://127.0.0.1:PORT/
"""

from collections.abc import AsyncIterator

from crawlmesh import Request, Response, Spider


class DemoSpider(Spider):
    name = "demo"
    start_url = "http://127.0.0.1:8000/"

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[object]:
        # Book pages carry a title, a price and a SKU: yield them as an item.
        title = response.css("h1.title::text").get()
        if title is not None:
            yield {
                "title": title,
                "price": response.css("p.price::text").get(),
                "sku": response.css("span.sku::text").get(),
                "url": response.url,
            }
        # Follow every link; the engine drops duplicates, links robots.txt
        # disallows (/admin/) and, since 404s are errors, reports broken links.
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
