"""The Spider base class users subclass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ._request import Request

if TYPE_CHECKING:
    from ._hooks import Events
    from ._response import Response
    from ._settings import Settings

__all__ = ["Spider"]


class Spider:
    """Base class for spiders.

    Subclass it, set :attr:`name` and :attr:`start_urls` (or write an async
    :meth:`start` generator) and a :meth:`parse` callback that yields items
    (dicts, msgspec Structs, dataclasses) and :class:`~crawlmesh.Request`\\ s.

    Attributes:
        name: the spider's name, used in logs and stats.
        start_urls: URLs to start from (fetched even if seen before).
        allowed_domains: if set, requests to other hosts (and their
            subdomains) are filtered out.
        custom_settings: setting overrides, as a mapping of dotted keys or
            nested tables, applied over the settings file and under ``-s``.
        handle_httpstatus_list: non-2xx statuses handed to callbacks; others
            are failures (kind ``http_error``) handed to the errback.
        settings: the resolved settings, set by the engine before ``start()``.
        pipelines: item pipelines, in order, after those of the ``pipelines``
            setting (see the README, "Item pipelines").
        fetch_hooks: fetch hooks, in order, after the ``fetch_hooks`` setting's.
        parse_hooks: parse hooks, in order, after the ``parse_hooks`` setting's.
        extensions: extensions, after the ``extensions`` setting's.
    """

    name: str = ""
    start_urls: Sequence[str] = ()
    allowed_domains: Sequence[str] = ()
    custom_settings: Mapping[str, Any] = {}
    handle_httpstatus_list: Sequence[int] = ()
    pipelines: Sequence[object] = ()
    fetch_hooks: Sequence[object] = ()
    parse_hooks: Sequence[object] = ()
    extensions: Sequence[object] = ()

    def __init__(self, **kwargs: Any) -> None:
        """Spider arguments (``-a NAME=VALUE``) become attributes."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        if not self.name:
            self.name = type(self).__name__.lower()
        self.logger = structlog.get_logger("crawlmesh.spider").bind(spider=self.name)
        self.settings: Settings | None = None

    async def start(self) -> AsyncIterator[Request]:
        """Yield the first requests; by default one per :attr:`start_urls`."""
        for url in self.start_urls:
            yield Request(url, dont_filter=True)

    def parse(self, response: Response) -> Any:
        """The default callback. Override it."""
        raise NotImplementedError(f"{type(self).__name__}.parse() is not defined")

    def subscribe(self, events: Events) -> None:
        """Subscribe to crawl events (``events.subscribe(ItemScraped, fn)``);
        called once before the crawl starts. By default nothing."""

    async def closed(self, reason: str) -> None:
        """Called once when the crawl ends, with the reason (``finished``, ...)."""
