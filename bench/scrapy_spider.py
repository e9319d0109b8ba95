"""The benchmark spider for Scrapy (the baseline crawlmesh is compared with).

Same logic as bench/crawlmesh_spider.py: start at /index.html, follow every
``a::attr(href)``, and on item pages (those with an ``h1.title``) yield title, price
and sku. bench/run.py runs it as::

    bench/.venv-scrapy/bin/scrapy runspider bench/scrapy_spider.py \
        -a start_url=http://127.0.0.1:PORT/index.html -O OUT.jsonl \
        -s CONCURRENT_REQUESTS=64 -s CONCURRENT_REQUESTS_PER_DOMAIN=64 -s LOG_LEVEL=WARNING
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response


class BenchSpider(scrapy.Spider):
    name = "bench"
    start_url = "http://127.0.0.1:8080/index.html"  # overridden with -a start_url=...

    custom_settings = {
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
        "DOWNLOAD_DELAY": 0,
        "ROBOTSTXT_OBEY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        # Scrapy 2.19 starts an HTTP remote-control server unless told not to.
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "FEED_EXPORT_ENCODING": "utf-8",
    }

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(self.start_url)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        title = response.css("h1.title::text").get()
        if title is not None:
            yield {
                "title": title,
                "price": response.css("p.price::text").get(),
                "sku": response.css("span.sku::text").get(),
            }
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
