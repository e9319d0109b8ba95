"""Parse hooks: the ordered list of objects that see what the spider
produces (what Scrapy's spider middlewares do).

A parse hook is any object with some of (each sync or ``async``)::

    def on_start(self, request) -> Request | None          # each start request
    def on_output(self, response, output) -> object | None  # what a callback (errback: None) yields

They run in list order inside the stage that owns the object: ``on_start``
as ``start()`` yields, ``on_output`` in the parse stage before a request is
scheduled or an item enters the pipelines. Returning ``None`` drops the
output: a request is counted as a filter (``dropped_by_hook``), an item as
dropped (``items_dropped``). Anything else returned takes the output's
place (a request may become an item, and back).

A hook that raises is the hook's bug: logged, counted in ``hook_errors``,
and the output is written to the errors file as ``hook_error`` (a request
with its URL, an item with its page's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from .._exceptions import CrawlmeshError
from .._request import Request
from ._call import call, methods

if TYPE_CHECKING:
    from .._response import Response

__all__ = ["HookFailed", "ParseHooks"]

log = structlog.get_logger("crawlmesh.hooks")


class HookFailed(CrawlmeshError):
    """Internal: a parse hook raised; ``reason`` names it and what it raised."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParseHooks:
    """Runs the parse hooks (see the module).

    Args:
        objects: the hooks, in order.
        errors: where hook failures are counted, by ``Class.method``.
    """

    def __init__(self, objects: Sequence[object] = (), *, errors: Counter[str] | None = None):
        self.objects = tuple(objects)
        self._on_start = methods(self.objects, "on_start")
        self._on_output = methods(self.objects, "on_output")
        self.errors: Counter[str] = Counter() if errors is None else errors
        self.active = bool(self._on_output)
        """Whether any hook sees callback output (else the parse stage skips them)."""
        self.active_start = bool(self._on_start)
        """Whether any hook sees start requests."""

    async def start(self, request: Request) -> Any:
        """``on_start`` of each hook: what to schedule, or None (dropped).

        Raises:
            HookFailed: a hook raised.
        """
        out: Any = request
        for method in self._on_start:
            out = await self._call(method.name, method.fn, out)
            if out is None:
                return None
        return out

    async def output(self, response: Response | None, out: Any) -> Any:
        """``on_output`` of each hook: what takes ``out``'s place, or None.

        Raises:
            HookFailed: a hook raised.
        """
        for method in self._on_output:
            out = await self._call(method.name, method.fn, response, out)
            if out is None:
                return None
        return out

    async def _call(self, name: str, fn: Any, *args: Any) -> Any:
        try:
            return await call(fn, *args)
        except Exception as exc:
            self.errors[name] += 1
            error = f"{type(exc).__name__}: {exc}"
            log.error("parse hook raised", hook=name, error=error, exc_info=exc)
            raise HookFailed(f"{name} raised {error}") from exc
