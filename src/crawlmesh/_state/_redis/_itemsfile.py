"""A worker's items file cut back to what it committed: the pages it did
not acknowledge are fetched again by other workers."""

from __future__ import annotations

import os

import coredis.exceptions
import structlog
import trio

from ._client import UNREACHABLE
from ._session import RedisSession

__all__ = ["cut_orphan", "cut_own_file"]

log = structlog.get_logger("crawlmesh.redis")


async def cut_own_file(session: RedisSession, output: str) -> None:
    """Fenced: other workers fetch again what we did not acknowledge, so
    our items file ``output`` goes back to what Redis holds as committed."""
    with trio.move_on_after(10):
        try:
            committed = await session.committed(output)
        except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
            log.error("cannot read this worker's committed length", error=str(exc))
            return
        if committed is not None:
            cut_orphan(output, committed)


def cut_orphan(file: str, committed: bytes) -> None:
    """Cut the items file of a worker that died on this host to what it
    committed: the pages it had not acknowledged went to other workers."""
    path = file.partition(":")[2]
    if not committed:
        return
    length = int(committed)
    try:
        size = os.path.getsize(path)
        if size > length:
            os.truncate(path, length)
            log.info(
                "cut a dead worker's items file to its last committed page",
                file=path,
                bytes=size - length,
            )
    except OSError as exc:
        log.warning("cannot cut a dead worker's items file", file=path, error=str(exc))
