"""What workers share beside the frontier: the rate limiter with its
Retry-After pauses, and the balancer's sessions and breakers (its
``MeshShare``), on Redis's clock."""

from __future__ import annotations

import time
from typing import Any

import coredis.exceptions
import structlog
import trio

from .._backend import EngineLink
from ._client import UNREACHABLE
from ._session import RedisSession

__all__ = ["SharedLimits"]

log = structlog.get_logger("crawlmesh.redis")


class SharedLimits:
    """The shared rate limiter (GCRA), sessions and Redis's clock, and the
    pauses and breakers applied from syncs.

    Until the session is connected, and once :meth:`off`, the gate lets
    every request through and sessions stay where they are placed: the
    local limiter and balancer still hold.
    """

    def __init__(self, session: RedisSession) -> None:
        self._session = session
        self._off = False
        self._paused: dict[bytes, int] = {}
        self._breakers: dict[bytes, int] = {}  # shared breakers applied, and until when
        self._clock_offset = 0.0  # Redis's clock minus ours, in ms

    def off(self) -> None:
        """Stop asking Redis (this worker was fenced)."""
        self._off = True

    @property
    def _on(self) -> bool:
        return self._session.client is not None and not self._off

    def until(self, seconds: float) -> int:
        """The time ``seconds`` from now on Redis's clock, in ms."""
        return int(time.time() * 1000 + self._clock_offset + seconds * 1000)

    def pause(self, domain: str, seconds: float) -> int:
        """Pause ``domain`` here at once; returns when it ends, for Redis."""
        until = self.until(seconds)
        # Known here at once (the shared gate checks it before Redis has it),
        # and not applied again when a sync brings it back.
        name = domain.encode()
        self._paused[name] = max(self._paused.get(name, 0), until)
        return until

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        if not self._on:
            return 0.0
        interval = str(max(1, round(1e6 / rate)))
        waited = 0.0
        try:
            while True:
                wait = await self._gcra(domain, key, interval, burst, "take")
                if wait <= 0:
                    return waited
                await trio.sleep(wait / 1e6)
                waited += wait / 1e6
                # The slot was given out before the wait: a Retry-After that
                # came meanwhile (from any worker) holds it back, and the
                # next slot is after the pause, at the rate.
                if await self._gcra(domain, key, interval, burst, "check") <= 0:
                    return waited
        except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
            # The local limiter still holds this worker to the rate.
            log.warning("shared rate limit unavailable; using the local one", error=str(exc))
            return waited

    async def _gcra(self, domain: str, key: str, interval: str, burst: int, mode: str) -> int:
        known = str(self._paused.get(domain.encode(), 0))
        return await self._session.gcra(key, [interval, str(burst), domain, mode, known])

    async def stick(self, session: str, node: str, ttl: float) -> str:
        if not self._on:
            return node
        try:
            held = await self._session.stick(session, [str(max(1, int(ttl * 1000))), node])
        except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
            log.warning("shared sessions unavailable; placing locally", error=str(exc))
            return node
        return held.decode() if isinstance(held, bytes) else str(held)

    def note(self, reply: list[Any], link: EngineLink | None) -> None:
        """Shared pauses and breakers, and Redis's clock, from a sync's reply."""
        now = int(reply[9])
        self._clock_offset = now - time.time() * 1000
        if link is None:
            return
        for paused, until in _newer(reply[8], self._paused):
            link.pause(paused.decode(), (until - now) / 1000)
        for key, until in _newer(reply[10], self._breakers):
            name, _, domain = key.decode().partition("\n")
            link.breaker(name, domain or None, (until - now) / 1000)


def _newer(flat: list[bytes], seen: dict[bytes, int]) -> list[tuple[bytes, int]]:
    """The (key, deadline) pairs of a reply's flat list that are later than
    the ones already applied (recorded in ``seen``)."""
    out = []
    for i in range(0, len(flat), 2):
        key, until = flat[i], int(flat[i + 1])
        if seen.get(key, 0) < until:
            seen[key] = until
            out.append((key, until))
    if len(seen) > 10_000:
        seen.clear()
    return out
