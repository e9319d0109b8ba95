"""The crawl's keys and scripts on one Redis client."""

from __future__ import annotations

from typing import Any

from ._client import Client
from ._scripts import CLOSE, GCRA, OPEN, STICK, SYNC

__all__ = ["RedisSession"]


class RedisSession:
    """The crawl's keys (under ``prefix``) and the scripts that change them,
    counting the round trips made.

    Args:
        prefix: the crawl's key prefix, ``crawlmesh:{namespace}:``.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client: Client | None = None  # set by attach(), kept after
        self.round_trips = 0

    def attach(self, client: Client) -> None:
        """Use ``client`` (once connected) for every call."""
        self.client = client
        self._sync = client.register_script(SYNC)
        self._open = client.register_script(OPEN)
        self._close = client.register_script(CLOSE)
        self._gcra = client.register_script(GCRA)
        self._stick = client.register_script(STICK)

    def key(self, name: str) -> str:
        return self.prefix + name

    def keys(self, *names: str) -> list[str]:
        """A script's keys: these, and the one never written (see
        :func:`~crawlmesh._state._redis._client.resharding`)."""
        return [*(self.prefix + name for name in names), self.prefix + "never"]

    async def open(self, args: list[str]) -> list[Any]:
        self.round_trips += 1
        reply: list[Any] = await self._open(keys=self.keys("seen"), args=args)
        return reply

    async def sync(self, args: list[bytes | str]) -> list[Any]:
        self.round_trips += 1
        reply: list[Any] = await self._sync(keys=self.keys("seen"), args=args)
        return reply

    async def close(self, args: list[str]) -> list[Any]:
        self.round_trips += 1
        reply: list[Any] = await self._close(keys=self.keys("seen"), args=args)
        return reply

    async def gcra(self, key: str, args: list[str]) -> int:
        self.round_trips += 1
        return int(await self._gcra(keys=self.keys("gcra:" + key, "pause"), args=args))

    async def stick(self, session: str, args: list[str]) -> Any:
        self.round_trips += 1
        return await self._stick(keys=self.keys("sess:" + session), args=args)

    async def committed(self, output: str) -> bytes | None:
        """The committed length of the items file ``output`` (no script)."""
        assert self.client is not None
        return await self.client.hget(self.key("outputs"), output)
