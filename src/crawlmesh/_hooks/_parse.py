"""Parse hooks: the ordered list of objects that see what the spider
produces (what Scrapy's spider middlewares do).

A parse hook is any object with some of (each sync or ``async``)::

    def on_start(self, request) -> Request | None           # each start request
    def on_output(self, response, outputs) -> Iterable | None  # one page's outputs

They run in list order inside the stage that owns the object: ``on_start``
as ``start()`` yields (``None`` drops the request: a ``dropped_by_hook``
filter); ``on_output`` in the parse stage, once per page, with the list of
what its callback (or errback: ``response`` is ``None``) yielded, before
requests are scheduled and items enter the pipelines. It returns what to
hand on instead (a list, a generator: outputs may be dropped, changed,
added, reordered) or ``None`` for no change. One call per page, as
Scrapy's ``process_spider_output``, keeps a hook's cost per page, not per
link. A request it leaves out is counted as a filter (``dropped_by_hook``),
an item as dropped (``items_dropped``). A callback that raises still has
what it yielded before the error handed to the hooks.

A hook that raises (or returns something that is not iterable) is the
hook's bug: logged, counted in ``hook_errors``, and the page's outputs are
written to the errors file as ``hook_error`` (each request with its URL,
the lost items with their page's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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

    async def output(self, response: Response | None, outputs: list[Any]) -> list[Any]:
        """``on_output`` of each hook, in order: what to hand on of a page's ``outputs``.

        Raises:
            HookFailed: a hook raised, or returned something not iterable.
        """
        for method in self._on_output:
            new = await self._call(method.name, method.fn, response, outputs)
            if new is not None:
                outputs = await self._collect(method.name, new)
        return outputs

    async def _collect(self, name: str, new: Any) -> list[Any]:
        """What a hook returned (a list, a generator, an async generator), as a list."""
        try:
            if hasattr(new, "__aiter__"):
                return [out async for out in new]
            if not isinstance(new, Iterable) or isinstance(new, str | bytes | Mapping):
                raise TypeError(f"{name} returned {type(new).__name__}; expected outputs or None")
            return list(new)
        except TypeError as exc:
            self.errors[name] += 1
            log.error("parse hook failed", hook=name, error=str(exc))
            raise HookFailed(str(exc)) from None
        except Exception as exc:
            self.errors[name] += 1
            error = f"{type(exc).__name__}: {exc}"
            log.error("parse hook raised", hook=name, error=error, exc_info=exc)
            raise HookFailed(f"{name} raised {error}") from exc

    async def _call(self, name: str, fn: Any, *args: Any) -> Any:
        try:
            return await call(fn, *args)
        except Exception as exc:
            self.errors[name] += 1
            error = f"{type(exc).__name__}: {exc}"
            log.error("parse hook raised", hook=name, error=error, exc_info=exc)
            raise HookFailed(f"{name} raised {error}") from exc
