"""What a worker has to tell Redis: the ops of its next ``SYNC`` call.

Each op is a letter and its arguments, flat in one list (the script reads
them in order): ``p`` a new request, ``a`` an acknowledgement, ``m`` a
fingerprint seen (with a token when a ``seen_first()`` waits for the
answer), ``s`` seeding done, ``k`` a session moved, ``b`` a breaker opened,
``x`` a Retry-After pause; the sync loop adds ``o`` (the items file's
length) and ``r`` (the leases it holds, after an uncertain sync).
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

__all__ = ["Outbox", "pushes"]

# How many arguments each SYNC op takes ('r' takes 1 + its count more).
_ARITY = {"p": 5, "a": 1, "m": 2, "o": 2, "s": 0, "k": 3, "b": 2, "x": 2, "r": 1}
# Ops waiting to be sent beyond which room() waits.
_MAX_OPS = 60_000


class _Mark:
    """A seen_first() call's answer, once a sync brings it."""

    __slots__ = ("answered", "new")

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.new = True


class Outbox:
    """The ops waiting for the next sync, and the tasks waiting on them.

    Every op sets :attr:`kick` (the sync loop waits on it). ``ops`` and
    ``acks`` (the acknowledgements among them) are the sync loop's to take.

    Args:
        worker: this worker's id, the prefix of its tokens.
    """

    __slots__ = ("_marks", "_room", "_tokens", "_worker", "acks", "kick", "ops")

    def __init__(self, worker: str) -> None:
        self._worker = worker
        self.ops: list[bytes | str] = []
        self.acks = 0  # acknowledgements in ops
        self.kick = trio.Event()
        self._room = trio.Event()
        self._tokens = itertools.count()
        self._marks: dict[str, _Mark] = {}  # seen_first() calls waiting for a sync

    def token(self) -> str:
        """A token no other op of any worker carries (the same if the batch
        is sent again, so a lost reply cannot make an op count twice)."""
        return f"{self._worker}:{next(self._tokens)}"

    def push(self, domain: str, priority: int, record: bytes, key: bytes | str, check: str) -> None:
        self.ops += ("p", domain, str(priority), record, key, check)
        self.kick.set()

    def seen(self, key: bytes | str) -> None:
        self.ops += ("m", key, "")
        self.kick.set()

    async def seen_first(self, key: bytes | str) -> bool:
        """Whether the fingerprint ``key`` is new crawl-wide, as the next
        sync answers (True if the sync loop stops first)."""
        token = self.token()
        mark = self._marks[token] = _Mark()
        self.ops += ("m", key, token)
        self.kick.set()
        await mark.answered.wait()
        return mark.new

    def answer_marks(self, marks: list[Any] | None) -> None:
        """Wake the seen_first() calls a sync answered (``marks``: its
        reply's token, new pairs), or all of them (None: Redis will not
        answer, so each says new)."""
        if marks is None:
            for waiting in self._marks.values():
                waiting.answered.set()
            self._marks.clear()
            return
        for i in range(0, len(marks), 2):
            mark = self._marks.pop(marks[i].decode(), None)
            if mark is not None:
                mark.new = int(marks[i + 1]) == 1
                mark.answered.set()

    def ack(self, member: bytes) -> None:
        self.ops += ("a", member)
        self.acks += 1

    def drop(self, member: bytes) -> None:
        """Acknowledge a claimed request that cannot be decoded (no page:
        not counted in :attr:`acks`)."""
        self.ops += ("a", member)

    def start_done(self) -> None:
        self.ops.append("s")
        self.kick.set()

    def pause(self, domain: str, until: int) -> None:
        self.ops += ("x", domain, str(until))
        self.kick.set()

    def session_moved(self, session: str, node: str, ttl_ms: int) -> None:
        self.ops += ("k", session, node, str(ttl_ms))
        self.kick.set()

    def breaker_opened(self, key: str, until: int) -> None:
        self.ops += ("b", key, str(until))
        self.kick.set()

    def take(self) -> tuple[list[bytes | str], int]:
        """The ops and their count of acknowledgements, for a sync."""
        taken, self.ops, acks, self.acks = self.ops, [], self.acks, 0
        return taken, acks

    def put_back(self, taken: list[bytes | str], acks: int) -> None:
        """A sync failed: its batch goes first in the next one."""
        self.ops[:0] = taken
        self.acks += acks

    @property
    def full(self) -> bool:
        return len(self.ops) > _MAX_OPS

    async def wait_room(self) -> None:
        """Until the next sync that got through."""
        self._room = trio.Event()
        await self._room.wait()

    def made_room(self) -> None:
        self._room.set()


def pushes(ops: list[bytes | str]) -> list[tuple[str, bytes]]:
    """The (domain, record) of each new request in a batch of SYNC ops."""
    out = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if op == "p":
            domain, record = ops[i + 1], ops[i + 3]
            assert isinstance(domain, str)
            assert isinstance(record, bytes)
            out.append((domain, record))
        n = _ARITY[op if isinstance(op, str) else op.decode()]
        if op == "r":
            n += int(ops[i + 1])
        i += 1 + n
    return out
