"""The Redis backend: one crawl shared by many workers.

:class:`RedisBackend` is the backend (``--backend redis://``), on a client
from :func:`open_client` (one server, a Cluster, or a Sentinel's primary);
:func:`resharding` tells a Cluster's passing refusals from real failures.
``crawlmesh backlog`` (:func:`print_backlog`, :func:`serve_backlog`) reads
how much work a shared crawl has left.
"""

import typing as _typing

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


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        from . import _backlog

        return getattr(_backlog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
