"""The user's extension points: item pipelines, fetch hooks, parse hooks,
and the crawl's events.

Each is an explicit, ordered list of plain objects (no priority numbers),
run inside the stage that owns what it touches, so that a hook that drops
or replaces something cannot break the crawl's accounting:

* :class:`Pipelines` (:mod:`._pipelines`): items, in the parse stage,
  before export.
* :class:`FetchHooks` (:mod:`._fetch`): each attempt at a request, in the
  balancer stage, once its node is chosen.
* :class:`ParseHooks` (:mod:`._parse`): start requests and whatever
  callbacks yield.
* :class:`Events` (:mod:`._events`): typed records of what happened, for
  spiders, pipelines, hooks and extensions that subscribe.

:func:`load_objects` builds them from settings' import paths.
"""

from ._events import (
    LAG_LIMIT,
    Event,
    Events,
    ItemDropped,
    ItemScraped,
    RequestDropped,
    RequestFailed,
    RequestScheduled,
    ResponseReceived,
    SpiderClosed,
    SpiderOpened,
)
from ._extensions import Extensions
from ._fetch import FetchHooks, HookReplaced
from ._load import load_objects
from ._parse import HookFailed, ParseHooks
from ._pipelines import DROPPED, Pipelines

__all__ = [
    "DROPPED",
    "LAG_LIMIT",
    "Event",
    "Events",
    "Extensions",
    "FetchHooks",
    "HookFailed",
    "HookReplaced",
    "ItemDropped",
    "ItemScraped",
    "ParseHooks",
    "Pipelines",
    "RequestDropped",
    "RequestFailed",
    "RequestScheduled",
    "ResponseReceived",
    "SpiderClosed",
    "SpiderOpened",
    "load_objects",
]
