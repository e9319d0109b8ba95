"""Admission control: a bounded queue in front of the fetch slots, and
per-client rates and in-flight caps.

Everything here answers at once: a request that would have to wait beyond
the queue is refused (load shedding), so memory stays bounded by
``concurrency + max_queue`` requests whatever the load.
"""

from __future__ import annotations

import math

import trio

from .._shaping._gcra import GcraLimiter

__all__ = ["Admission", "ClientLimits", "Refusal"]


class Refusal(Exception):
    """A request the node will not take now: ``code``, with a Retry-After."""

    def __init__(self, status: int, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class Admission:
    """``concurrency`` fetches at once, ``max_queue`` more waiting in FIFO order.

    Args:
        concurrency: fetch slots.
        max_queue: requests allowed to wait for a slot.
        retry_after: seconds to ask a refused client to wait.
    """

    def __init__(self, concurrency: int, max_queue: int, retry_after: int) -> None:
        self._slots = trio.CapacityLimiter(concurrency)
        self.max_queue = max_queue
        self._retry_after = retry_after
        self._admitted = 0
        self._idle: trio.Event | None = None
        self.shed = 0
        """Requests refused because the queue was full."""

    @property
    def in_flight(self) -> int:
        """Requests holding a fetch slot."""
        return int(self._slots.borrowed_tokens)

    @property
    def queue_size(self) -> int:
        """Requests waiting for a fetch slot."""
        return self._admitted - self.in_flight

    @property
    def admitted(self) -> int:
        """Requests holding a slot or waiting for one."""
        return self._admitted

    def admit(self) -> None:
        """Take a place in the queue, or raise :class:`Refusal` (503) at once."""
        if self._admitted >= int(self._slots.total_tokens) + self.max_queue:
            self.shed += 1
            raise Refusal(
                503,
                "overloaded",
                f"the node is at capacity ({self.in_flight} fetching, {self.queue_size} queued)",
                self._retry_after,
            )
        self._admitted += 1

    def leave(self) -> None:
        """Give back a place taken by :meth:`admit`."""
        self._admitted -= 1
        if not self._admitted and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def wait_idle(self) -> None:
        """Return once no request holds a place (at once if none does)."""
        if self._admitted:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()

    async def wait_slot(self) -> None:
        """Wait in the queue (FIFO) for a fetch slot; the caller has admitted."""
        await self._slots.acquire()

    def release_slot(self) -> None:
        """Give back the fetch slot taken by :meth:`wait_slot` (same task)."""
        self._slots.release()


class ClientLimits:
    """Per-client-address rate (GCRA, with bursts) and in-flight cap.

    Args:
        rate: requests per second per client (0: no rate limit).
        burst: requests beyond the rate a client may send at once.
        concurrency: requests in flight or queued per client (0: no cap).
    """

    def __init__(self, rate: float, burst: int, concurrency: int) -> None:
        self._rate = GcraLimiter[str](rate, burst) if rate > 0 else None
        self._concurrency = concurrency
        self._active: dict[str, int] = {}

    def enter(self, client: str) -> None:
        """Count a request of ``client`` in, or raise :class:`Refusal` (429)."""
        now = trio.current_time()
        if self._rate is not None:
            wait = self._rate.would_wait(client, now)
            if wait > 0:
                raise Refusal(
                    429,
                    "rate_limited",
                    f"over {self._rate.rate:g} requests/s for this client",
                    max(1, math.ceil(wait)),
                )
        active = self._active.get(client, 0)
        if self._concurrency and active >= self._concurrency:
            raise Refusal(
                429,
                "rate_limited",
                f"{active} requests of this client already in flight (limit {self._concurrency})",
                1,
            )
        if self._rate is not None:
            self._rate.reserve(client, now)
        self._active[client] = active + 1

    def leave(self, client: str) -> None:
        """Count a request of ``client`` out."""
        left = self._active[client] - 1
        if left:
            self._active[client] = left
        else:
            del self._active[client]
