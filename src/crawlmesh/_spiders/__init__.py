"""Spiders built on :class:`~crawlmesh.Spider` for common crawl shapes."""

from ._crawl import CrawlSpider as CrawlSpider
from ._crawl import Rule as Rule
from ._crawl import warn_unmatched_rules as warn_unmatched_rules
from ._crawl import warn_unused_rules as warn_unused_rules
from ._sitemap import SitemapSpider as SitemapSpider
from ._sitemap_parse import SitemapEntry as SitemapEntry

__all__ = [
    "CrawlSpider",
    "Rule",
    "SitemapEntry",
    "SitemapSpider",
    "warn_unmatched_rules",
    "warn_unused_rules",
]
