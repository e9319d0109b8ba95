"""The frontier: what is left to fetch, and what has been seen.

Two small interfaces, so a Redis or SQLite backend can stand in for the
in-memory one without the engine noticing:

* :class:`DupeFilter` answers "seen before?" for request fingerprints (in
  memory: :class:`~crawlmesh._frontier._dedupe.FingerprintSet`, 12-24 bytes a URL).
* :class:`Frontier` holds queued requests, one queue per domain, and hands
  them out round-robin across the domains a caller says are ready, so one
  huge site cannot starve the others and a blocked domain never holds up
  the rest (no head-of-line blocking).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from .._request import Request

__all__ = ["DupeFilter", "Frontier", "MemoryFrontier"]


class DupeFilter(Protocol):
    """A set of request fingerprints."""

    def add(self, fp: bytes) -> bool:
        """Record ``fp``; True if it was new."""
        ...

    def __len__(self) -> int: ...


class Frontier(Protocol):
    """Queued requests, grouped by domain."""

    def push(self, domain: str, request: Request) -> None:
        """Queue ``request`` under ``domain``."""
        ...

    def pop(self, ready: Callable[[str], bool]) -> tuple[str, Request] | None:
        """Take the next request from the next domain, in round-robin order,
        for which ``ready(domain)`` is true; None if there is none."""
        ...

    def drain(self) -> Iterator[tuple[str, Request]]:
        """Remove and yield every queued request (used at shutdown)."""
        ...

    def remove(self, domain: str) -> list[Request]:
        """Remove and return every request queued under ``domain``."""
        ...

    def __len__(self) -> int: ...


class MemoryFrontier:
    """Per-domain priority queues, served round-robin across domains.

    Within a domain, higher ``priority`` comes first and equal priorities
    keep their order (FIFO, i.e. breadth-first).
    """

    __slots__ = ("_count", "_queues", "_rotation", "_seq")

    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[int, int, Request]]] = {}
        # Domains with queued work, in service order.
        self._rotation: deque[str] = deque()
        self._seq = itertools.count()
        self._count = 0

    def push(self, domain: str, request: Request) -> None:
        q = self._queues.get(domain)
        if q is None:
            q = self._queues[domain] = []
        if not q:
            self._rotation.append(domain)
        heapq.heappush(q, (-request.priority, next(self._seq), request))
        self._count += 1

    def pop(self, ready: Callable[[str], bool]) -> tuple[str, Request] | None:
        rotation = self._rotation
        for _ in range(len(rotation)):
            domain = rotation[0]
            if ready(domain):
                q = self._queues[domain]
                request = heapq.heappop(q)[2]
                self._count -= 1
                if q:
                    rotation.rotate(-1)
                else:
                    rotation.popleft()
                    del self._queues[domain]
                return domain, request
            rotation.rotate(-1)
        return None

    def drain(self) -> Iterator[tuple[str, Request]]:
        queues, self._queues = self._queues, {}
        self._rotation.clear()
        self._count = 0
        for domain, q in queues.items():
            for _, _, request in sorted(q):
                yield domain, request

    def remove(self, domain: str) -> list[Request]:
        q = self._queues.pop(domain, None)
        if not q:
            return []
        self._rotation.remove(domain)
        self._count -= len(q)
        return [request for _, _, request in sorted(q)]

    def __len__(self) -> int:
        return self._count
