"""Scrapy's names for settings crawlmesh has under names of its own.

A spider ported from Scrapy brings its ``custom_settings``, and its author
types ``-s CONCURRENT_REQUESTS=8`` from habit: an unknown key that is a
Scrapy name is answered with the crawlmesh key, not with the nearest
spelling (which for ``USER_AGENT`` would be nothing at all).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SCRAPY_SETTINGS", "scrapy_hint"]

SCRAPY_SETTINGS: Mapping[str, str] = {
    "CONCURRENT_REQUESTS": "did you mean 'concurrency'?",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "did you mean 'concurrency_per_domain'?",
    "CONCURRENT_REQUESTS_PER_IP": "did you mean 'concurrency_per_domain'? Limits are per domain",
    "DOWNLOAD_DELAY": "did you mean 'download_delay'?",
    "ROBOTSTXT_OBEY": "did you mean 'robots.obey'?",
    "USER_AGENT": "did you mean 'user_agent'?",
    "DEFAULT_REQUEST_HEADERS": "did you mean 'default_headers'?",
    "DEPTH_LIMIT": "did you mean 'depth_limit'?",
    "CLOSESPIDER_PAGECOUNT": "did you mean 'max_pages'?",
    "CLOSESPIDER_ITEMCOUNT": "did you mean 'max_items'?",
    "DOWNLOAD_TIMEOUT": "did you mean 'timeouts.total'? Also timeouts.connect, timeouts.read",
    "DOWNLOAD_MAXSIZE": "did you mean 'max_response_size'?",
    "REDIRECT_MAX_TIMES": "did you mean 'max_redirects'?",
    "COOKIES_ENABLED": "did you mean 'cookies'?",
    "HTTPCACHE_ENABLED": "crawlmesh has no HTTP cache yet",
    "AUTOTHROTTLE_ENABLED": "did you mean 'throttle.enabled'? On by default",
    "RETRY_TIMES": "did you mean 'retry.max_attempts'? It counts the first attempt: "
    "RETRY_TIMES + 1",
    "RETRY_ENABLED": "did you mean 'retry.max_attempts'? 1 turns retries off",
    "RETRY_HTTP_CODES": "did you mean 'retry.retry_statuses'?",
    "LOG_LEVEL": "did you mean 'log_level'?",
    "ITEM_PIPELINES": "did you mean 'pipelines'? An ordered list of import paths",
    "DOWNLOADER_MIDDLEWARES": "did you mean 'fetch_hooks'? An ordered list of import paths",
    "SPIDER_MIDDLEWARES": "did you mean 'parse_hooks'? An ordered list of import paths",
    "EXTENSIONS": "did you mean 'extensions'? A list of import paths",
    "FEEDS": "did you mean 'feeds'?",
}
"""Scrapy setting -> what to tell its user."""


def scrapy_hint(key: str) -> str | None:
    """The hint for ``key`` if it is a Scrapy setting's name (in any case)."""
    hint = SCRAPY_SETTINGS.get(key.upper())
    return f"Scrapy's name; {hint}" if hint is not None else None
