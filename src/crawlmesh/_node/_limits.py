"""Admission control: a bounded queue in front of the fetch slots, and
per-client rates and in-flight caps.

Everything here answers at once: a request that would have to wait beyond
the queue is refused (load shedding), so memory stays bounded by
``concurrency + max_queue`` requests whatever the load.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import trio

from .._exceptions import NodeServiceError
from .._shaping import GcraLimiter

__all__ = ["Admission", "AuthFailures", "ClientLimits", "Refusal"]


class Refusal(NodeServiceError):
    """A request the node will not take now: ``code``, with a Retry-After."""

    def __init__(self, status: int, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class _Waiter:
    __slots__ = ("event", "granted", "seq")

    def __init__(self, seq: int) -> None:
        self.event = trio.Event()
        self.granted = False
        self.seq = seq


class Admission:
    """``concurrency`` fetch slots, ``max_queue`` more requests waiting.

    A request keeps its place and its slot until its answer is written, so
    answers held for slow readers count too. A free slot goes to the waiting
    client that holds the fewest slots (FIFO among equals), and no client
    holds more than ``client_slots``: one busy client never stalls the others.

    Args:
        concurrency: fetch slots.
        max_queue: requests allowed to wait for a slot.
        retry_after: seconds to ask a refused client to wait.
        client_slots: slots one client may hold (0: no cap).
    """

    def __init__(
        self, concurrency: int, max_queue: int, retry_after: int, client_slots: int = 0
    ) -> None:
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.client_slots = client_slots
        self._retry_after = retry_after
        self._admitted = 0
        self._busy = 0
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[_Waiter]] = {}
        self._seq = itertools.count()
        self._idle: trio.Event | None = None
        self.shed = 0
        """Requests refused because the queue was full."""

    @property
    def in_flight(self) -> int:
        """Requests holding a fetch slot (fetching, or writing the answer)."""
        return self._busy

    @property
    def queue_size(self) -> int:
        """Requests waiting for a fetch slot."""
        return self._admitted - self._busy

    @property
    def admitted(self) -> int:
        """Requests holding a slot or waiting for one."""
        return self._admitted

    def admit(self) -> None:
        """Take a place in the queue, or raise :class:`Refusal` (503) at once."""
        if self._admitted >= self.concurrency + self.max_queue:
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

    def _may_take(self, client: str) -> bool:
        return self._busy < self.concurrency and (
            not self.client_slots or self._held.get(client, 0) < self.client_slots
        )

    def _take(self, client: str) -> None:
        self._busy += 1
        self._held[client] = self._held.get(client, 0) + 1

    async def wait_slot(self, client: str) -> None:
        """Wait for a fetch slot for ``client``; the caller has admitted.

        A free slot is taken at once, even under an expired deadline: a
        request that could run is never told the node is full.
        """
        if client not in self._waiting and self._may_take(client):
            # (Anyone waiting now is at its cap: the free slot is not theirs.)
            self._take(client)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = _Waiter(next(self._seq))
        self._waiting.setdefault(client, deque()).append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release_slot(client)
            else:
                queue = self._waiting[client]
                queue.remove(waiter)
                if not queue:
                    del self._waiting[client]
            raise

    def release_slot(self, client: str) -> None:
        """Give back the slot taken by :meth:`wait_slot`, and hand it on."""
        self._busy -= 1
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]
        while self._busy < self.concurrency:
            best: tuple[tuple[int, int], str] | None = None
            for other, queue in self._waiting.items():
                held = self._held.get(other, 0)
                if self.client_slots and held >= self.client_slots:
                    continue
                rank = (held, queue[0].seq)
                if best is None or rank < best[0]:
                    best = (rank, other)
            if best is None:
                return
            chosen = best[1]
            queue = self._waiting[chosen]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[chosen]
            waiter.granted = True
            self._take(chosen)
            waiter.event.set()


class ClientLimits:
    """Per-client rate (GCRA, with bursts) and a cap on a client's requests
    in the node (reading their body, queued, fetching or answering).

    Args:
        rate: requests per second per client (0: no rate limit).
        burst: requests beyond the rate a client may send at once.
        concurrency: requests per client in the node at once (0: no cap).
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
                f"{active} requests of this client already in the node (limit {self._concurrency})",
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


class AuthFailures:
    """Failed auth attempts per address, on a GCRA budget of their own: a
    guesser gets 429 without touching the limits of any token.

    Args:
        rate: failures per second per address.
        burst: failures beyond the rate at once.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = GcraLimiter[str](rate, burst)

    def check(self, address: str) -> None:
        """Raise :class:`Refusal` (429) if ``address`` is over its budget."""
        wait = self._rate.would_wait(address, trio.current_time())
        if wait > 0:
            raise Refusal(
                429, "rate_limited", "too many failed auth attempts from this address",
                max(1, math.ceil(wait)),
            )  # fmt: skip

    def failed(self, address: str) -> None:
        """Count a failed attempt of ``address``."""
        now = trio.current_time()
        if self._rate.would_wait(address, now) <= 0:
            self._rate.reserve(address, now)
