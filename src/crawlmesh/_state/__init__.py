"""A crawl's state: where its frontier, dupe filter, journal and stats live.

A backend plays a few small roles, each its own protocol in ``_backend``,
and each engine stage depends only on the roles it uses:
:class:`RequestStore` (queued and finished requests), :class:`DedupeStore`
(fingerprints seen), :class:`Journal` (a page's items, kept with its
request), :class:`SharedLimits` (the rate shared with other workers) and
:class:`Lifecycle`; :class:`Backend` is all of them.

* :class:`MemoryBackend`: the default, nothing kept beyond this process.
* :class:`JobDir`: ``--jobdir``, pause and resume on one machine (SQLite).
* ``crawlmesh._state._redis`` (``--backend redis://``): one crawl shared by
  many workers. Its own face, not imported here, so an in-memory crawl
  never loads the Redis client.

Requests outlive a process as bytes (:class:`RequestCodec`); one that
cannot be stored raises :class:`NotPersistable`. :class:`MeshShare` is what
the balancer shares with the other workers through the backend.
"""

from ._backend import (
    Backend,
    DedupeStore,
    EngineLink,
    Journal,
    Lifecycle,
    RequestStore,
    Resume,
    SharedLimits,
)
from ._jobdir import JobDir
from ._memory import MemoryBackend
from ._records import NotPersistable, RequestCodec
from ._shared import MeshShare

__all__ = [
    "Backend",
    "DedupeStore",
    "EngineLink",
    "JobDir",
    "Journal",
    "Lifecycle",
    "MemoryBackend",
    "MeshShare",
    "NotPersistable",
    "RequestCodec",
    "RequestStore",
    "Resume",
    "SharedLimits",
]
