"""Item pipelines: the ordered list of objects every item passes through
between the callback that yielded it and the items output.

A pipeline is any object with some of::

    async def open(self, spider) -> None          # before the first request
    async def process_item(self, item, spider)    # -> the item, a new one, or raise DropItem
    async def close(self, spider) -> None         # after the last item

(each may also be a plain ``def``; :class:`~._extensions.Extensions` opens
and closes them with the extensions). Items go through the pipelines in list
order, inside the parse stage, before they are exported (with a journaling
backend, before they join their page's batch: what a resume commits is what
the pipelines let through).

* :class:`~crawlmesh.DropItem` drops the item: a counted filter
  (``items_dropped`` by reason in the stats), not an error.
* Returning ``None`` drops it too, counted as ``"NAME returned None"`` and
  warned about once (a ``process_item`` that forgot its ``return``).
* Any other exception is the pipeline's bug: logged with the item's request,
  counted in ``hook_errors``, and the item is written to the errors file as
  ``pipeline_error``: it is accounted for, and the crawl goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

import structlog

from .._exceptions import DropItem
from .._request import Request
from .._util._log import request_keys
from ._call import call, methods
from ._events import Events, ItemDropped

__all__ = ["DROPPED", "Pipelines"]

log = structlog.get_logger("crawlmesh.hooks")


class _Dropped:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED: Final = _Dropped()
"""What :meth:`Pipelines.process` returns for an item that goes no further."""


class Pipelines:
    """Runs items through the pipelines (see the module).

    Args:
        objects: the pipelines, in order.
        dropped: where drops are counted, by reason.
        errors: where pipeline failures are counted, by ``Class.method``.
        events: the crawl's events (``ItemDropped``).
        fail: writes a lost item's request to the errors file
            (``fail(request, kind, reason, domain)``).
    """

    def __init__(
        self,
        objects: Sequence[object],
        *,
        dropped: Counter[str],
        errors: Counter[str],
        events: Events,
        fail: Callable[[Request, str, str, str], None],
    ) -> None:
        self.objects = tuple(objects)
        self._process = methods(self.objects, "process_item")
        self._dropped = dropped
        self._errors = errors
        self._events = events
        self._fail = fail
        self._warned: set[str] = set()

    @property
    def active(self) -> bool:
        """Whether any pipeline processes items (else the stage skips them)."""
        return bool(self._process)

    async def process(self, item: Any, request: Request, domain: str, spider: object) -> Any:
        """``item`` through every pipeline: the item to export, or :data:`DROPPED`."""
        for method in self._process:
            try:
                out = await call(method.fn, item, spider)
            except DropItem as drop:
                self._drop(item, request, domain, drop.reason or type(drop).__name__)
                return DROPPED
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._errors[method.name] += 1
                log.error(
                    "pipeline raised",
                    **request_keys(request.url, domain),
                    pipeline=method.name,
                    error=error,
                    exc_info=exc,
                )
                self._fail(request, "pipeline_error", f"{method.name} raised {error}", domain)
                return DROPPED
            if out is None:
                reason = f"{method.name} returned None"
                if reason not in self._warned:
                    self._warned.add(reason)
                    log.warning(
                        "a pipeline returned None: the item is dropped "
                        "(return the item to keep it, raise DropItem to drop it)",
                        pipeline=method.name,
                    )
                self._drop(item, request, domain, reason)
                return DROPPED
            item = out
        return item

    def _drop(self, item: Any, request: Request, domain: str, reason: str) -> None:
        self._dropped[reason] += 1
        if self._events.wants(ItemDropped):
            self._events.emit(ItemDropped(item, request, reason))
        log.debug("item dropped", **request_keys(request.url, domain), reason=reason)
