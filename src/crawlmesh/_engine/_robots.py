"""robots.txt: fetched once per origin, parsed by protego (RFC 9309 rules).

* 2xx: the rules apply; Crawl-delay and Request-rate set the domain's delay.
* 4xx: no rules (allow everything).
* 5xx or unreachable: disallow everything for this crawl, as RFC 9309
  §2.3.1.3 asks; those requests fail with kind ``robots_unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult

import msgspec
import structlog
import trio
from protego import Protego

from .._exceptions import Banned, CircuitOpen, FetchError, ResponseTooLarge
from .._request import Request
from .._response import Response
from .._transport import FetchOptions, Transport
from .._util._log import request_keys

__all__ = ["RobotsCache", "RobotsVerdict"]

log = structlog.get_logger("crawlmesh.robots")

# RFC 9309 asks crawlers to parse at least 500 KiB; we parse the first 512 KiB.
_MAX_ROBOTS_SIZE = 512 * 1024
# Nodes tried for a robots.txt that comes back as a block page.
_BAN_ATTEMPTS = 3


class RobotsVerdict(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str = ""  # "robots" (a Disallow rule) or "robots_unavailable"


_ALLOW = RobotsVerdict(True)
_DISALLOW_RULE = RobotsVerdict(False, "robots")
_UNAVAILABLE = RobotsVerdict(False, "robots_unavailable")


class _Entry:
    __slots__ = ("held", "loaded", "parser", "unavailable")

    def __init__(self) -> None:
        self.loaded = trio.Event()
        self.parser: Protego | None = None
        self.unavailable = False
        # No node could fetch it (breakers open): nothing is known yet.
        self.held: CircuitOpen | None = None


class RobotsCache:
    """Answers whether a URL may be fetched.

    Args:
        transport: used to fetch robots.txt files.
        options: fetch limits (the size limit is raised to 512 KiB at most).
        user_agent: the product token matched against robots.txt groups.
        on_delay: called with ``(origin host, seconds)`` when a file asks
            for a Crawl-delay or Request-rate.
    """

    def __init__(
        self,
        transport: Transport,
        options: FetchOptions,
        user_agent: str,
        on_delay: Callable[[str, float], None],
    ) -> None:
        self._transport = transport
        self._options = options
        self._ua = user_agent
        self._on_delay = on_delay
        self._entries: dict[str, _Entry] = {}
        self.fetched = 0

    def is_loaded(self, parts: SplitResult) -> bool:
        entry = self._entries.get(_origin(parts))
        return entry is not None and entry.loaded.is_set()

    async def check(self, url: str, parts: SplitResult) -> RobotsVerdict:
        """The verdict for ``url``, loading its origin's robots.txt first if needed."""
        origin = _origin(parts)
        entry = self._entries.get(origin)
        if entry is None:
            entry = self._entries[origin] = _Entry()
            try:
                await self._load(origin, parts.hostname or "", entry)
            except CircuitOpen as exc:
                # Try again with the next request, once a breaker admits it.
                entry.held = exc
                del self._entries[origin]
                raise
            finally:
                entry.loaded.set()
        elif not entry.loaded.is_set():
            await entry.loaded.wait()
        if entry.held is not None:
            raise CircuitOpen(str(entry.held))
        if entry.unavailable:
            return _UNAVAILABLE
        if entry.parser is None or entry.parser.can_fetch(url, self._ua):
            return _ALLOW
        return _DISALLOW_RULE

    async def _load(self, origin: str, host: str, entry: _Entry) -> None:
        url = origin + "/robots.txt"
        self.fetched += 1
        keys = request_keys(url, host, None, 1)  # the node and attempt as they go
        try:
            with trio.fail_after(self._options.read_timeout * 2):
                response = await self._fetch_avoiding_bans(url, keys)
        except CircuitOpen:
            self.fetched -= 1  # not fetched after all
            raise
        except ResponseTooLarge as exc:
            # Reachable but huge: RFC 9309 asks for the first 500 KiB at least,
            # which the size limit did not let us keep. Crawl without rules.
            log.warning(
                "robots.txt larger than max_response_size; ignoring it", **keys, error=str(exc)
            )
            return
        except (FetchError, trio.TooSlowError) as exc:
            log.warning("robots.txt unreachable; disallowing the origin", **keys, error=str(exc))
            entry.unavailable = True
            return
        if response.status >= 500:
            log.warning(
                "robots.txt answered a server error; disallowing the origin",
                **keys,
                status=response.status,
            )
            entry.unavailable = True
        elif 200 <= response.status < 300:
            text = response.body[:_MAX_ROBOTS_SIZE].decode("utf-8", "replace")
            entry.parser = Protego.parse(text)
            delay = entry.parser.crawl_delay(self._ua) or 0.0
            rate = entry.parser.request_rate(self._ua)
            if rate is not None and rate.requests:
                delay = max(delay, rate.seconds / rate.requests)
            if delay:
                self._on_delay(host, float(delay))
        # Other statuses (4xx, 3xx left after redirects): no rules apply.

    async def _fetch_avoiding_bans(self, url: str, keys: dict[str, Any]) -> Response:
        """Fetch robots.txt; a node that gets a block page is not the
        origin's answer, so another node is tried (up to three in all).
        ``keys`` (a log line's) are kept up to date: node and attempt."""
        options = self._options
        for attempt in range(_BAN_ATTEMPTS):
            keys["attempt"] = attempt + 1
            try:
                response = await self._transport.fetch(Request(url), options)
            except FetchError as exc:
                keys["node"] = exc.node or None
                if not isinstance(exc, Banned) or not exc.node or attempt == _BAN_ATTEMPTS - 1:
                    raise
                avoid = options.avoid_nodes | {exc.node}
                options = msgspec.structs.replace(options, avoid_nodes=avoid, attempt=attempt + 2)
            else:
                keys["node"] = response.node or None
                return response
        raise AssertionError("unreachable")


def _origin(parts: SplitResult) -> str:
    return f"{parts.scheme.lower()}://{parts.netloc.lower().rpartition('@')[2]}"
