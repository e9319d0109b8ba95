"""The Request record that flows through every stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["Request"]


class Request(msgspec.Struct, dict=False, repr_omit_defaults=True):
    """A request to fetch, as yielded by spider callbacks.

    Args:
        url: absolute http(s) URL.
        callback: called with the :class:`~crawlmesh.Response`; defaults to
            the spider's ``parse``. It may be a sync or async generator, a
            coroutine, or a plain function, yielding or returning items and
            requests.
        errback: called with the :class:`~crawlmesh.FetchError` alone when
            the request finally fails (``cb_kwargs`` are not passed: they
            are on ``error.request``); it may yield items and requests too.
        method: HTTP method.
        headers: extra request headers.
        body: request body.
        priority: higher is fetched earlier among the same domain's requests.
        meta: the user's own data, handed back on ``response.meta``. The
            engine never reads or writes it.
        cb_kwargs: keyword arguments passed to the callback (not the errback).
        dont_filter: skip the duplicate filter.
        depth: link depth from a start request; set by the engine for
            requests yielded by callbacks.
        region: the egress region wanted (e.g. ``"eu-west"``); by default
            the balancer derives it from the host's country-code TLD.
        session: a session id: every request of a session goes through
            the same node, with its own cookie jar there. An
            ``X-Session-ID`` header means the same.
        referer: the URL of the page whose callback (or errback) yielded
            the request; set by the engine, as ``depth`` is, and written to
            the errors file. It is not sent as a header.
        rule: for a request a :class:`~crawlmesh.CrawlSpider` made from a
            link, the index in its ``rules`` of the :class:`~crawlmesh.Rule`
            that matched the link (None for every other request). Its
            callback and ``follow`` are applied to the response.
    """

    url: str
    callback: Callable[..., Any] | None = None
    errback: Callable[..., Any] | None = None
    method: str = "GET"
    headers: dict[str, str] | None = None
    body: bytes = b""
    priority: int = 0
    meta: dict[str, Any] = {}
    cb_kwargs: dict[str, Any] = {}
    dont_filter: bool = False
    depth: int = 0
    region: str | None = None
    session: str | None = None
    referer: str | None = None
    rule: int | None = None

    def replace(self, **changes: Any) -> Request:
        """Return a copy with ``changes`` applied."""
        return msgspec.structs.replace(self, **changes)
