"""How the sync loop rides out a Redis that is away or resharding."""

from __future__ import annotations

import coredis.exceptions
import structlog
import trio

from ._client import resharding

__all__ = ["Outage"]

log = structlog.get_logger("crawlmesh.redis")

_MAX_BACKOFF = 5.0


class Outage:
    """Backoff between failed syncs, and a log line when Redis goes away
    (or a Cluster slot moves) and when it is back.

    Args:
        lease_ttl: the crawl's; the backoff stays well within it, so an
            outage fences no one.
    """

    def __init__(self, lease_ttl: float) -> None:
        self._backoff = 0.1
        self._max_backoff = min(_MAX_BACKOFF, lease_ttl / 8)
        self._down_since: float | None = None
        self._moving_since: float | None = None  # (a reshard)

    def failed(self, exc: BaseException) -> bool:
        """Note a failed sync; False when it would fail the same way again
        (Redis refused the script: stop)."""
        if resharding(exc):
            if self._moving_since is None:
                self._moving_since = trio.current_time()
                log.warning("Redis Cluster slot moving; retrying", error=str(exc))
        elif isinstance(exc, coredis.exceptions.ResponseError):
            return False
        elif self._down_since is None:
            self._down_since = trio.current_time()
            log.warning("Redis unreachable; retrying", error=str(exc) or repr(exc))
        return True

    async def wait(self) -> None:
        """Until the next try, twice as long as the last."""
        await trio.sleep(self._backoff)
        self._backoff = min(self._max_backoff, self._backoff * 2)

    def over(self) -> None:
        """A sync got through."""
        if self._moving_since is not None:
            log.info(
                "Redis Cluster slot in place again",
                after=round(trio.current_time() - self._moving_since, 1),
            )
            self._moving_since = None
        if self._down_since is not None:
            log.info(
                "Redis reachable again", after=round(trio.current_time() - self._down_since, 1)
            )
            self._down_since = None
        self._backoff = 0.1
