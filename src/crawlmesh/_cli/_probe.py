"""A few requests through a whole engine, for the developer commands.

``crawlmesh fetch``, ``parse`` and ``shell`` must see a page as a crawl
would: robots.txt, the node mesh, default headers, fetch hooks, retries and
decoding. Rather than rebuilding that path from its parts (where it could
drift from the engine's), they run an :class:`~crawlmesh.Engine` with the
spider's settings whose only start request is the one asked for.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio

from .._engine import Engine
from .._engine._export import JsonLinesWriter
from .._exceptions import FetchError, HttpError, UsageError
from .._hooks import Events
from .._observe import CrawlStats
from .._request import Request
from .._response import Response
from .._settings import Settings
from .._spider import Spider

__all__ = ["Fetched", "check_url", "fetch_once", "not_fetched", "run_from"]


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL.

    Raises:
        UsageError: it is not (a host alone gets an example with a scheme).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        example = f" (e.g. https://{url})" if "://" not in url else ""
        raise UsageError(f"{url!r} is not an http(s) URL{example}")
    return url


def run_from(
    spider: Spider,
    settings: Settings,
    first: Request,
    *,
    items: JsonLinesWriter | None = None,
    parse_hooks: Sequence[object] = (),
    subscribe: Callable[[Events], None] | None = None,
) -> CrawlStats:
    """Crawl from ``first`` alone with ``spider`` and ``settings`` (blocking:
    one ``trio.run``, so a REPL can call it between prompts). What its
    callbacks yield goes through the engine as in a crawl: ``parse_hooks``
    see it first; items go to ``items`` (nowhere by default).

    Args:
        subscribe: called with the engine's events before it runs.
    """

    async def start() -> AsyncIterator[Request]:
        yield first

    spider.start = start  # type: ignore[method-assign]
    with open(os.devnull, "wb") as sink:
        engine = Engine(
            spider,
            settings,
            items=JsonLinesWriter(sink) if items is None else items,
            parse_hooks=parse_hooks,
        )
        if subscribe is not None:
            subscribe(engine.events)
        return trio.run(engine.run)


def not_fetched(url: str, stats: CrawlStats) -> str:
    """Why ``url`` was not fetched at all (the filters that ended it)."""
    why = ", ".join(sorted(stats.filtered)) or "dropped"
    return f"{url} was not fetched: filtered ({why})"


@dataclass(frozen=True)
class Fetched:
    """What one fetch got.

    Attributes:
        request: the request asked for.
        response: the response, also for an HTTP error status; None when
            the fetch failed.
        error: why the spider's callbacks would not see it: the failure, or
            the :class:`~crawlmesh.HttpError` of an error status.
    """

    request: Request
    response: Response | None
    error: FetchError | None


def fetch_once(
    spider: Spider, settings: Settings, request: Request
) -> tuple[Fetched | None, CrawlStats]:
    """Fetch ``request`` as ``spider`` would, without running its callbacks
    (blocking).

    Returns:
        What came back (None when the engine filtered the request:
        robots.txt, ``allowed_domains``, a fetch hook) and the stats.
    """
    got: list[Fetched] = []

    def landed(response: Response, **_: Any) -> None:
        got.append(Fetched(request, response, None))

    def failed(error: FetchError) -> None:
        response = error.response if isinstance(error, HttpError) else None
        got.append(Fetched(request, response, error))

    # (dont_filter: a fetch is asked for, even of a URL seen before.)
    probe = request.replace(callback=landed, errback=failed, cb_kwargs={}, dont_filter=True)
    stats = run_from(spider, settings, probe)
    return (got[0] if got else None), stats
