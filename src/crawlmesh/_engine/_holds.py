"""Domains no node could serve: the politeness gate over the balancer's
circuit breakers.

The gate (:meth:`CircuitHolds.gate`) holds a domain while every node's
breaker for it is open; one held longer than ``breaker.park_timeout`` is
noted in :attr:`CircuitHolds.expired` for the dispatch stage to write its
requests off, and an answer from the domain ends its hold (the fetch stage
takes it out of :attr:`CircuitHolds.since`).
"""

from __future__ import annotations

import math

import structlog
import trio

from .._balancer import Balancer
from .._observe import StatsCollector
from .._settings import Settings
from .._shaping import Politeness

__all__ = ["CircuitHolds"]

log = structlog.get_logger("crawlmesh.engine")


class CircuitHolds:
    """Which domains the breakers hold, since when.

    Args:
        balancer: the node mesh whose breakers hold domains.
        settings: resolved settings (``breaker.park_timeout``).
        stats: the crawl's counters (``circuit_holds``).
    """

    __slots__ = ("_balancer", "_politeness", "_settings", "_stats", "expired", "since")

    def __init__(self, balancer: Balancer, settings: Settings, stats: StatsCollector) -> None:
        self._balancer = balancer
        self._settings = settings
        self._stats = stats
        self._politeness: Politeness | None = None
        self.since: dict[str, float] = {}
        """Domains no node could serve, since when."""
        self.expired: set[str] = set()
        """Domains held longer than ``breaker.park_timeout``."""

    def bind(self, politeness: Politeness) -> None:
        """The politeness this gate is the gate of (where waits for a
        per-node rate are noted)."""
        self._politeness = politeness

    def gate(self, domain: str) -> float:
        """When ``domain`` may take a request, as far as breakers go; notes
        domains that no node could serve for ``breaker.park_timeout``."""
        until, by_breakers = self._balancer.blocked_until(domain)
        if until == -math.inf:
            return until
        now = trio.current_time()
        if until <= now:
            return until
        if not by_breakers:  # only waiting for a per-node rate
            assert self._politeness is not None
            self._politeness.note_wait(domain, until, "node_rate")
            return until
        since = self.since.get(domain)
        if since is None:
            since = self.since[domain] = now
            self._stats.circuit_holds += 1
            log.info("holding a domain: no node can serve it", domain=domain)
        deadline = since + self._settings.breaker.park_timeout
        if now >= deadline:
            self.expired.add(domain)  # the dispatcher writes its requests off
            return until
        return min(until, deadline)
