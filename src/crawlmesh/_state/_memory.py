"""The in-memory crawl: a backend that keeps nothing beyond this process.

What the engine runs on without ``--jobdir`` or ``--backend``: the dupe
filter is a :class:`~crawlmesh._frontier._dedupe.FingerprintSet`, every
request is queued locally, nothing is journaled or shared, and requests the
crawl ends before it could go to the errors file (there is no later run to
keep them for).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from .._frontier import DupeFilter, FingerprintSet
from .._observe import StatsCollector
from .._request import Request
from ._backend import EngineLink, Resume

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """One process's crawl state, in memory (see the module).

    Args:
        dupefilter: seen fingerprints (default: a new :class:`FingerprintSet`).
    """

    __slots__ = ("_dupefilter",)

    # (Plain attributes: the stages read them once, so the hot path stays free.)
    keeps_unfinished = False  # no later run: the errors file has them
    journals = False  # items are exported one by one
    shared = False  # one process: the engine's own limits are all there is
    mesh_share = None  # one process: the balancer keeps its own

    def __init__(self, dupefilter: DupeFilter | None = None) -> None:
        # (``is None``, not ``or``: an empty dupe filter is falsy.)
        self._dupefilter: DupeFilter = FingerprintSet() if dupefilter is None else dupefilter

    # -- RequestStore --------------------------------------------------------

    def queued(self, domain: str, request: Request, fp: bytes, *, seed: bool) -> bool:
        return True  # queued locally, and only there

    def finished(self, request: Request) -> None:
        pass

    def mark_start_done(self) -> None:
        pass

    async def room(self) -> None:
        pass  # nothing waits to be stored

    @property
    def drained(self) -> bool:
        return True  # nothing is queued but in this process

    # -- DedupeStore ---------------------------------------------------------

    @property
    def dupefilter(self) -> DupeFilter:
        return self._dupefilter

    def seen(self, fp: bytes) -> None:
        pass  # the dupe filter, which recorded it, is all there is

    async def seen_first(self, fp: bytes) -> bool:
        return True  # one process: the dupe filter, which said new, is the crawl's

    # -- Journal -------------------------------------------------------------

    def commit(self, lengths: Mapping[str, int], stats: StatsCollector) -> None:
        pass

    # -- SharedLimits --------------------------------------------------------

    def pause(self, domain: str, seconds: float) -> None:
        pass  # one process: the engine's own pause is all there is

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        return 0.0  # one process: the engine's own limiter is all there is

    # -- Lifecycle -----------------------------------------------------------

    @asynccontextmanager
    async def connect(self, link: EngineLink, stats: StatsCollector) -> AsyncIterator[Resume]:
        yield Resume(resumed=False)

    async def run(self) -> None:
        pass  # nothing runs in the background

    async def aclose(self, stats: StatsCollector, lengths: Mapping[str, int]) -> None:
        return None  # one process: its stats are the crawl's
