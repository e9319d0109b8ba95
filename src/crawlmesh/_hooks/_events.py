"""Crawl events: typed records of what happened, and the bus that hands them
to subscribers.

Spiders, pipelines, hooks and extensions subscribe with
:meth:`Events.subscribe` (from a ``subscribe(events)`` method the engine
calls before the crawl starts). A handler is a plain function or an
``async def``:

* a plain handler runs at once, inside the stage that emitted the event;
* an async handler runs in the events task, one event after another in
  the order they were emitted; while more than :data:`LAG_LIMIT` events
  wait for it, the parse stage waits too (a slow handler slows the crawl
  instead of filling memory).

A handler that raises is logged with its name and counted in the stats
(``hook_errors``); it does not stop the crawl or change what it was told.
Emitting an event nobody subscribed to costs one set lookup, so the stages
ask :meth:`Events.wants` before they build a record.
"""

from __future__ import annotations

import inspect
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
import trio

from .._request import Request

if TYPE_CHECKING:
    from .._exceptions import FetchError
    from .._response import Response

__all__ = [
    "LAG_LIMIT",
    "Event",
    "Events",
    "ItemDropped",
    "ItemScraped",
    "RequestDropped",
    "RequestFailed",
    "RequestScheduled",
    "ResponseReceived",
    "SpiderClosed",
    "SpiderOpened",
]

log = structlog.get_logger("crawlmesh.hooks")

LAG_LIMIT = 1000
"""Events waiting for async handlers beyond which the parse stage waits."""


class Event:
    """Base of every event record."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SpiderOpened(Event):
    """The crawl is starting (pipelines and extensions are open)."""

    spider: object


@dataclass(frozen=True, slots=True)
class SpiderClosed(Event):
    """The crawl has ended, for ``reason`` (``finished``, ``shutdown``, ...)."""

    spider: object
    reason: str


@dataclass(frozen=True, slots=True)
class RequestScheduled(Event):
    """A request passed the filters and was queued."""

    request: Request


@dataclass(frozen=True, slots=True)
class RequestDropped(Event):
    """A request ended as a counted filter (``reason`` is the stats key:
    ``duplicate``, ``offsite``, ``robots``, ``dropped_by_hook`` ...)."""

    request: Request
    reason: str


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """A response came back (before its callback runs; retried ones too)."""

    request: Request
    response: Response


@dataclass(frozen=True, slots=True)
class RequestFailed(Event):
    """A request (or an item of it) was written to the errors file.

    Attributes:
        request: the request.
        kind: the error kind (the stats and errors-file key).
        reason: what went wrong.
        error: the fetch error, when a fetch failed.
    """

    request: Request
    kind: str
    reason: str
    error: FetchError | None = None


@dataclass(frozen=True, slots=True)
class ItemScraped(Event):
    """An item was written to the items output."""

    item: Any
    request: Request


@dataclass(frozen=True, slots=True)
class ItemDropped(Event):
    """A pipeline dropped an item (``reason``: what it said)."""

    item: Any
    request: Request
    reason: str


E = TypeVar("E", bound=Event)
Handler = Callable[[Any], object]


class Events:
    """The crawl's event bus (see the module).

    Args:
        errors: where handler failures are counted (by handler name).
    """

    def __init__(self, errors: Counter[str] | None = None) -> None:
        self._sync: dict[type[Event], list[Handler]] = {}
        self._async: dict[type[Event], list[Callable[[Any], Awaitable[object]]]] = {}
        self._kinds: frozenset[type[Event]] = frozenset()
        self._queue: deque[tuple[Callable[[Any], Awaitable[object]], Event]] = deque()
        self._wake = trio.Event()
        self._room = trio.Event()
        self._idle = trio.Event()
        self._busy = False
        self._closed = False
        self.errors: Counter[str] = Counter() if errors is None else errors

    def subscribe(self, kind: type[E], handler: Callable[[E], object]) -> None:
        """Call ``handler`` with every event of type ``kind``.

        Raises:
            TypeError: ``kind`` is not an event type or ``handler`` not callable.
        """
        if not (isinstance(kind, type) and issubclass(kind, Event)):
            raise TypeError(f"subscribe() takes an event type, got {kind!r}")
        if not callable(handler):
            raise TypeError(f"subscribe({kind.__name__}, ...): {handler!r} is not callable")
        if inspect.iscoroutinefunction(handler):
            self._async.setdefault(kind, []).append(handler)
        else:
            self._sync.setdefault(kind, []).append(handler)
        self._kinds = frozenset({*self._sync, *self._async})

    def wants(self, kind: type[Event]) -> bool:
        """Whether anyone subscribed to ``kind``."""
        return kind in self._kinds

    def emit(self, event: Event) -> None:
        """Hand ``event`` to its subscribers: plain ones now, async ones queued."""
        kind = type(event)
        for handler in self._sync.get(kind, ()):
            try:
                handler(event)
            except Exception as exc:
                self._failed(handler, event, exc)
        for coro_fn in self._async.get(kind, ()):
            self._queue.append((coro_fn, event))
            self._wake.set()

    @property
    def lagging(self) -> bool:
        """Whether async handlers are more than :data:`LAG_LIMIT` events behind."""
        return len(self._queue) > LAG_LIMIT

    async def wait_for_room(self) -> None:
        """Return once async handlers are at most :data:`LAG_LIMIT` events behind."""
        while self.lagging and not self._closed:
            self._room = trio.Event()
            await self._room.wait()

    async def drain(self) -> None:
        """Return once every queued event has been handled."""
        while self._queue or self._busy:
            self._idle = trio.Event()
            await self._idle.wait()

    async def run(self) -> None:
        """Run queued async handlers until :meth:`close` (then drain the queue)."""
        while True:
            while self._queue:
                handler, event = self._queue.popleft()
                if len(self._queue) <= LAG_LIMIT:
                    self._room.set()
                self._busy = True
                try:
                    await handler(event)
                except Exception as exc:
                    self._failed(handler, event, exc)
                finally:
                    self._busy = False
            self._idle.set()
            if self._closed:
                return
            self._wake = trio.Event()
            await self._wake.wait()

    def close(self) -> None:
        """Let :meth:`run` return once the queue is empty."""
        self._closed = True
        self._wake.set()
        self._room.set()
        self._idle.set()

    def _failed(self, handler: Callable[..., object], event: Event, exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        self.errors[name] += 1
        log.error(
            "event handler raised",
            handler=name,
            on=type(event).__name__,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
