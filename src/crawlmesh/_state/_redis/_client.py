"""Connecting to Redis from a backend URL: one server, a Cluster, or the
primary a Sentinel names."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import coredis
import coredis.exceptions
from coredis.retry import NoRetryPolicy

from ..._exceptions import SettingsError
from ..._util._redact import register_url_secrets

__all__ = ["UNREACHABLE", "Client", "open_client", "redact", "resharding"]

Client = coredis.Redis[bytes] | coredis.RedisCluster[bytes]

# Errors that mean "Redis is not there right now": retried with backoff.
UNREACHABLE = (coredis.exceptions.ConnectionError, TimeoutError, OSError)

_OPTIONS: dict[str, Any] = {
    "decode_responses": False,
    "retry_policy": NoRetryPolicy(),  # the backend retries, knowing which calls may repeat
    "connect_timeout": 5.0,
    "stream_timeout": 30.0,
}


def resharding(exc: BaseException) -> bool:
    """Whether ``exc`` is a Redis Cluster moving the crawl's hash slot (a
    reshard) or electing a new primary: temporary, worth retrying.

    Every script declares a key that is never written (``P never``), so a
    script is refused while its slot migrates (ASK from the source, then
    TRYAGAIN from the target, which the cluster client turns into "maximum
    retries exhausted") rather than run half on each node. "Script attempted
    to access a non local key" is the same situation met inside a script.
    A MOVED that reaches us (a plain client: the cluster client follows it)
    is not temporary: the slot is on another node for good.
    """
    if isinstance(exc, coredis.exceptions.MovedError):
        return False
    if isinstance(
        exc,
        coredis.exceptions.TryAgainError
        | coredis.exceptions.AskError
        | coredis.exceptions.ClusterDownError,
    ):
        return True
    if isinstance(exc, coredis.exceptions.ClusterError):
        return "retries exhausted" in str(exc)
    return isinstance(exc, coredis.exceptions.ResponseError) and "non local key" in str(exc)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(//[^/@]*?:)[^@/]*@", r"\1***@", url)


@asynccontextmanager
async def open_client(url: str) -> AsyncIterator[Client]:
    """A connected client for ``url``:

    * ``redis://[:PASSWORD@]HOST:PORT/DB``, ``rediss://...`` (TLS), ``unix://PATH?db=N``
    * ``redis+cluster://[:PASSWORD@]HOST:PORT``: a Cluster, from any of its nodes
    * ``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]``:
      the primary of SERVICE, as the Sentinels say (and say again after a failover)

    Raises:
        SettingsError: the URL is malformed.
    """
    register_url_secrets(url)  # its password, masked in every log line
    if url.startswith("redis+sentinel://"):
        async with _sentinel_primary(url) as client:
            yield client
        return
    try:
        if url.startswith("redis+cluster://"):
            one: Client = coredis.RedisCluster.from_url("redis://" + url[16:], **_OPTIONS)
        else:
            one = coredis.Redis.from_url(url, **_OPTIONS)
    except (ValueError, coredis.exceptions.RedisError) as exc:
        raise SettingsError(f"backend.url {redact(url)}: {exc}") from None
    async with one:
        yield one


@asynccontextmanager
async def _sentinel_primary(url: str) -> AsyncIterator[Client]:
    rest = url[len("redis+sentinel://") :]
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        password = unquote(auth.partition(":")[2]) or None
    sentinels = []
    for hostport in netloc.split(","):
        parts = urlsplit("//" + hostport)
        try:
            sentinels.append((parts.hostname or "", parts.port or 26379))
        except ValueError:
            raise SettingsError(f"backend.url {redact(url)}: bad sentinel {hostport!r}") from None
    service, _, db = path.partition("/")
    if not service or not all(host for host, _ in sentinels):
        raise SettingsError(
            f"backend.url {redact(url)}: expected redis+sentinel://HOST:PORT[,...]/SERVICE[/DB]"
        )
    options = dict(_OPTIONS)
    if password is not None:
        options["password"] = password
    sentinel: coredis.Sentinel[bytes] = coredis.Sentinel(
        sentinels,
        sentinel_kwargs={"connect_timeout": 5.0, "stream_timeout": 5.0},
        **options,
    )
    async with sentinel:
        primary = sentinel.primary_for(service, db=int(db or 0))
        async with primary:
            yield primary
