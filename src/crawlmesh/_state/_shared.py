"""What the balancer shares with the other workers of a distributed crawl
(through the backend, e.g. Redis): which node holds each session, and
which breakers are open. Without a share, the balancer keeps both to itself.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MeshShare"]


class MeshShare(Protocol):
    async def stick(self, session: str, node: str, ttl: float) -> str:
        """The node the whole crawl holds for ``session``: the one stored,
        else ``node`` (stored now, for ``ttl`` idle seconds)."""
        ...

    def session_moved(self, session: str, node: str, ttl: float) -> None:
        """``session`` is on ``node`` now (moved, or used again): store it."""
        ...

    def breaker_opened(self, node: str, domain: str | None, seconds: float) -> None:
        """A node's breaker (``domain`` None) or a (node, domain) breaker
        opened here for ``seconds``: open it everywhere."""
        ...
