"""Extensions, and the opening and closing of everything the user plugs in.

An extension is any object with some of (each sync or ``async``)::

    def subscribe(self, events) -> None   # events.subscribe(ItemScraped, self.on_item) ...
    def open(self, spider) -> None        # before the first request
    def close(self, spider) -> None       # after the last item

Pipelines and hooks may have ``subscribe`` too, and the spider has one
(:meth:`crawlmesh.Spider.subscribe`). An ``open`` that raises stops the
crawl before it starts (:class:`~crawlmesh.HookError`, naming it; what was
opened already is closed again); a ``close`` that raises is logged and
counted, and the others still close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog

from .._exceptions import HookError
from ._call import call, methods
from ._events import Events, SpiderOpened
from ._pipelines import Pipelines

__all__ = ["Extensions"]

log = structlog.get_logger("crawlmesh.hooks")


class Extensions:
    """Opens and closes the pipelines and extensions (see the module).

    Args:
        objects: the extensions, in order.
        errors: where ``close`` failures are counted, by ``Class.method``.
    """

    def __init__(self, objects: Sequence[object], errors: Counter[str]) -> None:
        self.objects = tuple(objects)
        self._errors = errors
        self._opened: list[object] = []

    @staticmethod
    def subscribe(objects: Sequence[object], events: Events) -> None:
        """Call ``subscribe(events)`` of each object that has one, in order."""
        for method in methods(objects, "subscribe"):
            method.fn(events)

    async def open_all(self, spider: object, pipelines: Pipelines, events: Events) -> None:
        """Open the pipelines, then the extensions, and tell the events.

        Raises:
            HookError: an ``open`` raised (the ones opened before it are closed).
        """
        for obj in (*pipelines.objects, *self.objects):
            for method in methods((obj,), "open"):
                try:
                    await call(method.fn, spider)
                except Exception as exc:
                    await self.close_all(spider, events)
                    raise HookError(f"{method.name} raised {type(exc).__name__}: {exc}") from exc
            self._opened.append(obj)
        events.emit(SpiderOpened(spider))

    async def close_all(self, spider: object, events: Events) -> None:
        """Close what was opened, in the order it opened, once the events
        already emitted have been handled."""
        await events.drain()
        opened, self._opened = self._opened, []
        for method in methods(opened, "close"):
            try:
                await call(method.fn, spider)
            except Exception as exc:
                self._errors[method.name] += 1
                log.error(
                    "close raised",
                    hook=method.name,
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=exc,
                )
