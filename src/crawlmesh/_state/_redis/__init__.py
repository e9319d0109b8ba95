"""The Redis backend: one crawl shared by many workers.

:class:`RedisBackend` is the backend (``--backend redis://``), on a client
from :func:`open_client` (one server, a Cluster, or a Sentinel's primary);
:func:`resharding` tells a Cluster's passing refusals from real failures.
``crawlmesh backlog`` (:func:`print_backlog`, :func:`serve_backlog`) reads
how much work a shared crawl has left.
"""

import typing as _typing

from ..._util._lazy import lazy_exports as _lazy_exports
from ._backend import RedisBackend
from ._client import open_client, redact, resharding

if _typing.TYPE_CHECKING:
    from ._backlog import Backlog, print_backlog, read_backlog, serve_backlog

__all__ = [
    "Backlog",
    "RedisBackend",
    "open_client",
    "print_backlog",
    "read_backlog",
    "redact",
    "resharding",
    "serve_backlog",
]

# `crawlmesh backlog` serves Prometheus metrics through Starlette and
# hypercorn: a crawl worker on Redis does not load them.
_LAZY = frozenset({"Backlog", "print_backlog", "read_backlog", "serve_backlog"})


__getattr__, __dir__ = _lazy_exports(__name__, "._backlog", _LAZY, globals())
