"""The benchmark spider for crawlmesh (same logic as bench/scrapy_spider.py).

Start at /index.html, follow every ``a::attr(href)``, and on item pages (those with
an ``h1.title``) yield title, price and sku. bench/run.py runs it from /work/main as::

    crawlmesh crawl bench.crawlmesh_spider -a start_url=http://127.0.0.1:PORT/index.html \
        -o OUT.jsonl -s concurrency=64 -s concurrency_per_domain=64 -s robots.obey=false \
        --log-level warning
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crawlmesh import Request, Response, Spider


class BenchSpider(Spider):
    name = "bench"
    start_url = "http://127.0.0.1:8080/index.html"  # overridden with -a start_url=...

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        title = response.css("h1.title::text").get()
        if title is not None:
            yield {
                "title": title,
                "price": response.css("p.price::text").get(),
                "sku": response.css("span.sku::text").get(),
            }
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
