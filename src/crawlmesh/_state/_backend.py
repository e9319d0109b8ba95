"""What the engine asks of a backend: where a crawl's frontier, dupe filter
and stats live.

A backend plays a few small roles, each its own protocol, and each stage
depends only on the roles it uses:

* :class:`RequestStore`: the requests queued and finished (what a resume
  finds), and whether the crawl's work is drained;
* :class:`DedupeStore`: the fingerprints seen;
* :class:`Journal`: a page's items committed with each feed's length;
* :class:`SharedLimits`: the rate limits and pauses every worker shares (and
  the balancer's sessions and breakers);
* :class:`Lifecycle`: connect, background work, close.

:class:`Backend` is all of them, what the engine is given. Three implement
it: :class:`~crawlmesh._state._memory.MemoryBackend` (the default: one
process, nothing kept), :class:`~crawlmesh._state._jobdir.JobDir`
(``--jobdir``, SQLite on one machine) and
:class:`~crawlmesh._state._redis.RedisBackend` (``--backend redis://``, many
workers).

The engine journals to the backend as requests come and go; the backend
talks back through :class:`EngineLink`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .._frontier import DupeFilter
from .._observe import StatsCollector
from .._request import Request
from ._shared import MeshShare

__all__ = [
    "Backend",
    "DedupeStore",
    "EngineLink",
    "Journal",
    "Lifecycle",
    "RequestStore",
    "Resume",
    "SharedLimits",
]


class Resume:
    """What :meth:`Lifecycle.connect` found.

    Attributes:
        resumed: an earlier run (or another worker) left state behind.
        lengths: cut each feed (by name) back to this many bytes (a feed
            not named: leave it).
        pending: requests to queue locally at once, with their domains.
        start_done: the spider's ``start()`` needs no run in this process.
    """

    __slots__ = ("lengths", "pending", "resumed", "start_done")

    def __init__(
        self,
        *,
        resumed: bool,
        lengths: Mapping[str, int] | None = None,
        pending: list[tuple[str, Request]] | None = None,
        start_done: bool = False,
    ) -> None:
        self.resumed = resumed
        self.lengths = dict(lengths or {})
        self.pending = pending or []
        self.start_done = start_done


class EngineLink(Protocol):
    """The engine, as a backend sees it."""

    def feed(self, domain: str, request: Request) -> None:
        """Queue a request the backend handed to this process."""
        ...

    def seed(self) -> None:
        """Run the spider's ``start()`` here (its seeder died)."""
        ...

    def wake(self) -> None:
        """Something changed: the engine should check whether it is done."""
        ...

    def pause(self, domain: str, seconds: float) -> None:
        """Start nothing for ``domain`` for ``seconds`` (another worker's Retry-After)."""
        ...

    def breaker(self, node: str, domain: str | None, seconds: float) -> None:
        """Another worker's breaker for ``node`` (and ``domain``) opened."""
        ...

    def stop(self, reason: str) -> None:
        """Stop the crawl gracefully."""
        ...

    def backlog(self) -> int:
        """Requests this process holds and has not finished."""
        ...


class RequestStore(Protocol):
    """The requests a crawl queued and has not finished (what a resume finds)."""

    @property
    def keeps_unfinished(self) -> bool:
        """Whether requests the crawl ends before it could stay for a later
        run (else they go to the errors file)."""
        ...

    def queued(self, domain: str, request: Request, fp: bytes, *, seed: bool) -> bool:
        """A request was admitted; True if the engine should queue it locally
        (else the backend queues it elsewhere).

        Raises:
            NotPersistable: it cannot be stored.
        """
        ...

    def finished(self, request: Request) -> None:
        """``request`` ended (its items, if any, are written)."""
        ...

    def mark_start_done(self) -> None:
        """``start()`` ran to its end in this process."""
        ...

    async def room(self) -> None:
        """Wait while too many requests wait to be stored."""
        ...

    @property
    def drained(self) -> bool:
        """No work is left anywhere but in this process."""
        ...


class DedupeStore(Protocol):
    """The fingerprints of the requests a crawl has seen."""

    @property
    def dupefilter(self) -> DupeFilter:
        """The fingerprints the engine's admission checks."""
        ...

    def seen(self, fp: bytes) -> None:
        """A redirect reached a URL whose fingerprint is ``fp``: record it as
        seen, as if it had been queued (the engine added it to
        :attr:`dupefilter` already)."""
        ...

    async def seen_first(self, fp: bytes) -> bool:
        """A redirect chain ended at a URL whose fingerprint is ``fp``, new
        to :attr:`dupefilter`: record it as :meth:`seen` does, and say
        whether it is new to the whole crawl (False: another worker queued
        or reached that URL, so the page is a duplicate). A backend that
        cannot tell says True (a page is never dropped on a guess)."""
        ...


class Journal(Protocol):
    """Where each page's items are committed with the feeds' lengths."""

    @property
    def journals(self) -> bool:
        """Whether pages are journaled: False, and the engine exports items
        one by one and never calls :meth:`commit` for a page (read once)."""
        ...

    def commit(self, lengths: Mapping[str, int], stats: StatsCollector) -> None:
        """Make what was journaled durable, with each feed's length by name
        (footers excluded; a feed that is no regular file is not there)."""
        ...


class SharedLimits(Protocol):
    """The limits every worker of a crawl shares."""

    @property
    def shared(self) -> bool:
        """Whether other processes work on the same crawl (False: :meth:`gate`
        is never called; read once)."""
        ...

    @property
    def mesh_share(self) -> MeshShare | None:
        """Where the balancer shares sessions and breakers (None: nowhere)."""
        ...

    def pause(self, domain: str, seconds: float) -> None:
        """``domain`` asked for a pause (Retry-After): share it."""
        ...

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        """Wait for a slot of a rate limit shared by every worker, for a
        request to ``domain`` (not sent while it is paused, by any worker);
        returns the seconds waited for it."""
        ...


class Lifecycle(Protocol):
    """A backend's start, background work and end."""

    def connect(
        self, link: EngineLink, stats: StatsCollector
    ) -> AbstractAsyncContextManager[Resume]:
        """Connect for the length of the crawl, loading what is there
        (restoring ``stats`` if the backend keeps them).

        Raises:
            BackendError: it cannot be reached or refuses this worker.
        """
        ...

    async def run(self) -> None:
        """Background work, until cancelled (or nothing to do: it returns)."""
        ...

    async def aclose(
        self, stats: StatsCollector, lengths: Mapping[str, int]
    ) -> dict[str, int] | None:
        """Commit and close; requests not finished stay for a later run.
        Returns the crawl-wide totals of a shared crawl (else None)."""
        ...


class Backend(RequestStore, DedupeStore, Journal, SharedLimits, Lifecycle, Protocol):
    """A crawl's state, all its roles (see the module): what the engine is given."""
