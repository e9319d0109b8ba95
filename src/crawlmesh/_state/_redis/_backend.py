"""One crawl shared by many workers through Redis (``--backend redis://``).

Each worker keeps a small local frontier of requests it has *claimed*: a
claim moves them from the shared per-domain queues into the worker's lease
hash, atomically. The worker renews its leases by heartbeat (every sync);
when a worker goes silent for ``lease_ttl``, the next worker to sync puts its
leased requests back in the queues and fences it off (a late
acknowledgement from it is refused).

New requests, acknowledgements of finished pages, the items file's
committed length and Retry-After pauses are batched into one ``SYNC``
script call that also claims more work: one round trip carries many pages.
A page is acknowledged only after its items are written, and the committed
length of the items file travels with the acknowledgement, so a worker
restarted on the same file cuts off what an unacknowledged page wrote, and
at the end a surviving worker on the same host cuts a dead worker's file.

The crawl is over when seeding is done, nothing is queued and nothing is
leased, across all workers.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import coredis
import coredis.exceptions
import structlog
import trio

from ..._exceptions import BackendError, SettingsError, sole_leaf
from ..._frontier._dedupe import FingerprintSet
from ..._observe._stats import StatsCollector
from ..._request import Request
from ..._settings import BackendSettings
from ..._spider import Spider
from ..._util._redact import register_url_secrets
from .._backend import EngineLink, Resume
from .._records import RequestCodec
from ._bloom import BloomPositions
from ._client import UNREACHABLE, Client, open_client, redact, resharding
from ._scripts import CLOSE, GCRA, OPEN, STICK, SYNC

__all__ = ["RedisBackend"]

log = structlog.get_logger("crawlmesh.redis")

# A sync with new requests waits this long for more to join its batch.
_LINGER = 0.005
# How often a worker with room for work and nothing claimed asks again.
_POLL = 0.05
# Ops waiting to be sent beyond which start() waits.
_MAX_OPS = 60_000
_MAX_BACKOFF = 5.0
# How long a worker starting during a reshard waits for the crawl's slot.
_JOIN_PATIENCE = 60.0


class RedisBackend:
    """The crawl's frontier, dupe filter, limits and stats in Redis.

    Args:
        config: the ``backend`` settings (its ``url`` names the Redis).
        spider: whose methods stored callbacks name; its name is the
            crawl's key prefix unless ``config.namespace`` says otherwise.
        concurrency: the engine's; a worker keeps about twice this claimed.
        output: the items file's path, if items go to a regular file.
    """

    shared = True

    def __init__(
        self,
        config: BackendSettings,
        spider: Spider,
        *,
        concurrency: int,
        output: str | None = None,
    ) -> None:
        self._config = config
        register_url_secrets(config.url)  # its password, masked in every log line
        self._where = f"--backend {redact(config.url)}"
        namespace = config.namespace or spider.name
        self._prefix = f"crawlmesh:{{{namespace}}}:"
        self._codec = RequestCodec(spider, self._where)
        self._host = socket.gethostname()
        self.worker = f"{self._host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._output = f"{self._host}:{os.path.realpath(output)}" if output else None
        self._ttl_ms = int(config.lease_ttl * 1000)
        self._target = max(2 * concurrency, config.claim)
        self._bloom = BloomPositions(config.bloom_capacity) if config.dedupe == "bloom" else None
        # What this worker has seen: duplicates it knows of never leave it.
        self.dupefilter = FingerprintSet()
        self._ops: list[bytes | str] = []
        self._acks = 0  # acknowledgements in _ops
        self._tokens = itertools.count()
        self._leases: dict[int, tuple[Request, bytes]] = {}  # id(request) -> (it, its member)
        self._marks: dict[str, _Mark] = {}  # seen_first() calls waiting for a sync
        self._syncing = False  # run() is running
        self._items_length: int | None = None
        self._sent_length: int | None = None
        self._paused: dict[bytes, int] = {}
        self._breakers: dict[bytes, int] = {}  # shared breakers applied, and until when
        self._kick = trio.Event()
        self._room = trio.Event()
        self._drained = False
        self._seeding = False
        self._start_finished = False  # our start() ran to its end
        self._fenced = False
        self._broken: str | None = None  # Redis refused our script: why
        self._uncertain = False  # a sync failed after it may have run
        self._epoch = ""  # the crawl's, from our first sync: its loss is noticed
        self._capped = False  # the crawl handed out backend.max_pages requests
        self._clock_offset = 0.0  # Redis's clock minus ours, in ms
        self._link: EngineLink | None = None
        self._client: Client | None = None
        self.round_trips = 0
        self.acked = 0

    # -- the Backend protocol ------------------------------------------------

    @asynccontextmanager
    async def connect(self, link: EngineLink, stats: StatsCollector) -> AsyncIterator[Resume]:
        """Connect, claim the items file and learn the crawl's state.

        Raises:
            BackendError: Redis cannot be reached, or another live worker
                writes the same items file.
        """
        self._link = link
        where = redact(self._config.url)
        connected = False  # (after that, errors are the crawl's, not ours)
        try:
            async with open_client(self._config.url) as client:
                self._client = client
                self._sync_script = client.register_script(SYNC)
                self._open_script = client.register_script(OPEN)
                self._close_script = client.register_script(CLOSE)
                self._gcra_script = client.register_script(GCRA)
                self._stick_script = client.register_script(STICK)
                resume = await self._first_contact()
                connected = True
                yield resume
        except (*UNREACHABLE, coredis.exceptions.RedisError, BaseExceptionGroup) as exc:
            leaf = sole_leaf(exc)  # (the client's task group may wrap it)
            if connected:
                raise
            if isinstance(leaf, UNREACHABLE):
                raise BackendError(f"cannot reach Redis at {where}: {leaf}") from None
            if isinstance(leaf, coredis.exceptions.MovedError):
                netloc = urlsplit(where).netloc
                raise BackendError(
                    f"Redis at {where} is a node of a Redis Cluster (it answered MOVED: the "
                    f"crawl's slot {leaf.slot_id} is on {leaf.host}:{leaf.port}): use "
                    f"--backend redis+cluster://{netloc}"
                ) from None
            if isinstance(leaf, coredis.exceptions.RedisError):
                raise BackendError(f"Redis at {where}: {leaf}") from None
            raise

    async def _first_contact(self) -> Resume:
        deadline = trio.current_time() + _JOIN_PATIENCE
        while True:
            try:
                return await self._join()
            except coredis.exceptions.RedisError as exc:
                # (Both scripts may run again: OPEN claims the same file,
                # and a SYNC refused during a reshard did not run.)
                if not resharding(exc) or trio.current_time() > deadline:
                    raise
                log.warning("Redis Cluster slot moving; retrying", error=str(exc))
                await trio.sleep(0.2)

    async def _join(self) -> Resume:
        committed = None
        if self._output is not None:
            self.round_trips += 1
            reply: list[Any] = await self._open_script(
                keys=self._keys("seen"),
                args=[self._prefix, self.worker, self._output, str(self._ttl_ms)],
            )
            if reply[0] == b"busy":
                raise BackendError(
                    f"another live worker ({reply[1].decode()}) writes the items file "
                    f"{self._output.partition(':')[2]}: give each worker its own -o"
                )
            if reply[1]:
                committed = int(reply[1])
        reply = await self._call_sync([], 0)
        state, seed, queued, leased = reply[0], reply[1], int(reply[2]), int(reply[3])
        self._seeding = state == b"seeding"
        resumed = seed == b"done" or queued > 0 or leased > 0
        self._note(reply)
        log.info(
            "joined a shared crawl" if resumed else "starting a shared crawl",
            backend=redact(self._config.url),
            worker=self.worker,
            queued=queued,
            leased=leased,
            seeding=self._seeding,
        )
        return Resume(resumed=resumed, items_length=committed, start_done=not self._seeding)

    def queued(self, domain: str, request: Request, fp: bytes, *, seed: bool) -> bool:
        if self._broken is not None:
            return True  # (stopping: the engine ends it, in the errors file)
        record = self._codec.encode(request)
        if self._bloom is not None:
            key: bytes | str = self._bloom.positions(fp)
        else:
            key = fp
        # Seeds are deduplicated even with dont_filter, so seeding twice
        # (a seeder that died) queues nothing twice; other dont_filter
        # requests carry a token instead, so a batch sent again queues each once.
        check = "1"
        if request.dont_filter and not seed:
            check = f"{self.worker}:{next(self._tokens)}"
        self._ops += ("p", domain, str(request.priority), record, key, check)
        self._kick.set()
        return False

    def seen(self, fp: bytes) -> None:
        self._ops += ("m", self._dedupe_key(fp), "")
        self._kick.set()

    async def seen_first(self, fp: bytes) -> bool:
        # Answered by the next sync; the same token if that sync is sent
        # again, so a lost reply cannot turn "new" into "seen".
        if not self._syncing or self._fenced or self._broken is not None:
            return True
        token = f"{self.worker}:{next(self._tokens)}"
        mark = self._marks[token] = _Mark()
        self._ops += ("m", self._dedupe_key(fp), token)
        self._kick.set()
        await mark.answered.wait()
        return mark.new

    def _dedupe_key(self, fp: bytes) -> bytes | str:
        return fp if self._bloom is None else self._bloom.positions(fp)

    def _answer_marks(self, marks: list[Any] | None) -> None:
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

    def finished(self, request: Request) -> None:
        entry = self._leases.pop(id(request), None)
        if entry is not None:
            self._ops += ("a", entry[1])
            self._acks += 1
        self._kick.set()

    def commit(self, items_length: int | None, stats: StatsCollector) -> None:
        self._items_length = items_length

    def mark_start_done(self) -> None:
        self._start_finished = True
        self._ops.append("s")
        self._kick.set()

    def pause(self, domain: str, seconds: float) -> None:
        until = int(time.time() * 1000 + self._clock_offset + seconds * 1000)
        # Known here at once (the shared gate checks it before Redis has it),
        # and not applied again when a sync brings it back.
        name = domain.encode()
        self._paused[name] = max(self._paused.get(name, 0), until)
        self._ops += ("x", domain, str(until))
        self._kick.set()

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        if self._client is None or self._fenced:
            return 0.0
        interval = str(max(1, round(1e6 / rate)))
        waited = 0.0
        try:
            while True:
                wait = await self._gcra(domain, key, interval, burst, "take")
                if wait <= 0:
                    return waited
                await trio.sleep(wait / 1e6)
                waited += wait / 1e6
                # The slot was given out before the wait: a Retry-After that
                # came meanwhile (from any worker) holds it back, and the
                # next slot is after the pause, at the rate.
                if await self._gcra(domain, key, interval, burst, "check") <= 0:
                    return waited
        except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
            # The local limiter still holds this worker to the rate.
            log.warning("shared rate limit unavailable; using the local one", error=str(exc))
            return waited

    async def _gcra(self, domain: str, key: str, interval: str, burst: int, mode: str) -> int:
        self.round_trips += 1
        known = str(self._paused.get(domain.encode(), 0))
        return int(
            await self._gcra_script(
                keys=self._keys("gcra:" + key, "pause"),
                args=[interval, str(burst), domain, mode, known],
            )
        )

    # -- the MeshShare protocol (the balancer's sessions and breakers) -----------

    @property
    def mesh_share(self) -> RedisBackend:
        return self

    async def stick(self, session: str, node: str, ttl: float) -> str:
        if self._client is None or self._fenced:
            return node
        try:
            self.round_trips += 1
            held: Any = await self._stick_script(
                keys=self._keys("sess:" + session), args=[str(max(1, int(ttl * 1000))), node]
            )
        except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
            log.warning("shared sessions unavailable; placing locally", error=str(exc))
            return node
        return held.decode() if isinstance(held, bytes) else str(held)

    def session_moved(self, session: str, node: str, ttl: float) -> None:
        self._ops += ("k", session, node, str(max(1, int(ttl * 1000))))
        self._kick.set()

    def breaker_opened(self, node: str, domain: str | None, seconds: float) -> None:
        until = int(time.time() * 1000 + self._clock_offset + seconds * 1000)
        self._ops += ("b", f"{node}\n{domain or ''}", str(until))
        self._kick.set()

    async def room(self) -> None:
        while len(self._ops) > _MAX_OPS and not self._fenced:
            self._room = trio.Event()
            await self._room.wait()

    @property
    def drained(self) -> bool:
        return self._drained or self._fenced or self._broken is not None

    async def run(self) -> None:
        self._syncing = True
        try:
            await self._sync_loop()
        finally:
            self._syncing = False
            self._answer_marks(None)  # (stopped: nothing will answer them)

    async def _sync_loop(self) -> None:
        link = self._link
        assert link is not None
        backoff = 0.1
        # Back online well within a lease, so an outage fences no one.
        max_backoff = min(_MAX_BACKOFF, self._config.lease_ttl / 8)
        down_since: float | None = None
        moving_since: float | None = None  # (a reshard)
        while not self._fenced and self._broken is None:
            want = max(0, self._target - link.backlog())
            if not self._ops:
                idle = self._config.lease_ttl / 4  # the heartbeat
                with trio.move_on_after(_POLL if want and not self._drained else idle):
                    await self._kick.wait()
            await trio.sleep(_LINGER)
            self._kick = trio.Event()
            want = max(0, self._target - link.backlog())
            taken, self._ops, acks, self._acks = self._ops, [], self._acks, 0
            ops = list(taken)
            # The length as of these acks (pages may finish during the call).
            length = self._items_length
            if self._output is not None and length != self._sent_length:
                ops += ("o", self._output, str(length))
            if self._uncertain:
                held = [member for _, member in self._leases.values()]
                ops += ("r", str(len(held)), *held)  # (after the acks in this batch)
            try:
                reply = await self._call_sync(ops, want)
            except trio.Cancelled:
                # The crawl is ending: aclose() sends them (again, maybe).
                self._put_back(taken, acks, uncertain=True)
                raise
            except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
                # It may have run all the same: pushes are deduplicated,
                # acknowledgements repeat harmlessly, and the leases it may
                # have made are handed back by the next sync's "r" op.
                self._put_back(taken, acks, uncertain=True)
                if resharding(exc):
                    if moving_since is None:
                        moving_since = trio.current_time()
                        log.warning("Redis Cluster slot moving; retrying", error=str(exc))
                elif isinstance(exc, coredis.exceptions.ResponseError):
                    # It would fail the same way again: stop.
                    self._broken = str(exc)
                    log.error(
                        "Redis refused the crawl's script; stopping",
                        error=str(exc),
                        **_cluster_hint(exc),
                    )
                    link.stop("backend_error")
                    link.wake()
                    return
                elif down_since is None:
                    down_since = trio.current_time()
                    log.warning("Redis unreachable; retrying", error=str(exc) or repr(exc))
                await trio.sleep(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            if moving_since is not None:
                log.info(
                    "Redis Cluster slot in place again",
                    after=round(trio.current_time() - moving_since, 1),
                )
                moving_since = None
            if reply[0] == b"lost":
                self._put_back(taken, acks, uncertain=False)  # (its requests are ended here)
            if down_since is not None:
                log.info("Redis reachable again", after=round(trio.current_time() - down_since, 1))
                down_since = None
            backoff = 0.1
            self._uncertain = False
            self.acked += acks
            self._sent_length = length
            self._room.set()
            self._handle(reply, link)

    def _put_back(self, taken: list[bytes | str], acks: int, *, uncertain: bool) -> None:
        """A sync failed: its batch goes first in the next one (or aclose's)."""
        self._ops[:0] = taken
        self._acks += acks
        self._uncertain = self._uncertain or uncertain

    def _handle(self, reply: list[Any], link: EngineLink) -> None:
        if reply[0] == b"lost":
            self._lost(reply[1])
            link.stop("crawl_lost")
            # The new requests Redis never stored end with the crawl (in
            # the errors file), as the ones this worker holds do.
            for domain, record in _pushes(self._ops):
                link.feed(domain, self._codec.decode(record))
            self._ops = []
            link.wake()
            return
        if reply[0] == b"fenced":
            self._fenced = True
            log.error(
                "this worker was silent longer than backend.lease_ttl and its requests went "
                "to other workers; stopping",
                worker=self.worker,
            )
            link.stop("fenced")
            link.wake()
            return
        state, seed = reply[0], reply[1]
        queued, leased, reaped, _, lost, claimed = (
            int(reply[2]), int(reply[3]), int(reply[4]), reply[5], int(reply[6]), reply[7]
        )  # fmt: skip
        seeding = state == b"seeding"
        if seeding and self._start_finished:
            self._ops.append("s")  # ours ended while another held seeding: say it again
            self._kick.set()
        elif seeding and not self._seeding:
            log.info("taking over seeding: the seeding worker went away")
            link.seed()
        self._seeding = seeding
        if reaped:
            log.info("took back the requests of workers gone silent", requests=reaped)
        if lost:
            log.warning(
                "acknowledgements refused: those leases had expired and went to other workers",
                pages=lost,
            )
        for i in range(0, len(claimed), 2):
            member, domain = claimed[i], claimed[i + 1]
            try:
                request = self._codec.decode(member.partition(b":")[2])
            except SettingsError as exc:
                log.error("dropping a stored request", error=str(exc))
                self._ops += ("a", member)
                continue
            self._leases[id(request)] = (request, member)
            link.feed(domain.decode(), request)
        self._note(reply)
        self._answer_marks(reply[13])
        if reply[12] == 1 and not self._capped:
            self._capped = True
            log.info(
                "the crawl has handed out backend.max_pages requests; stopping once this "
                "worker's are done",
                max_pages=self._config.max_pages,
            )
        if self._capped and link.backlog() == 0:
            link.stop("max_pages")
            link.wake()
        drained = seed == b"done" and queued == 0 and leased == 0 and not self._ops
        if drained != self._drained:
            self._drained = drained
            link.wake()
        if len(claimed) // 2 >= max(1, self._target // 2):
            self._kick.set()  # there may be more to claim

    def _lost(self, epoch: bytes | None) -> None:
        """The crawl this worker joined is not in Redis any more: say why,
        and stop talking to Redis (a sync would start the crawl over)."""
        self._broken = "crawl lost"
        if epoch is None:
            log.error(
                "the crawl's state is gone from Redis (a Redis restarted without persistence, "
                "FLUSHALL or FLUSHDB, or eviction under maxmemory); stopping rather than crawling "
                "it all again into the same items files. Run Redis with appendonly yes and "
                "maxmemory-policy noeviction; to start over, delete the items files and run "
                "the workers again",
                key=self._key("epoch"),
                worker=self.worker,
            )
        else:
            log.error(
                "the crawl in Redis is not the one this worker joined (its keys were deleted "
                "and a new crawl started); stopping",
                key=self._key("epoch"),
                joined=self._epoch,
                found=epoch.decode(),
            )

    def _note(self, reply: list[Any]) -> None:
        """Shared pauses and breakers, and Redis's clock, from a sync's reply."""
        now = int(reply[9])
        self._clock_offset = now - time.time() * 1000
        link = self._link
        if link is None:
            return
        for paused, until in _newer(reply[8], self._paused):
            link.pause(paused.decode(), (until - now) / 1000)
        for key, until in _newer(reply[10], self._breakers):
            name, _, domain = key.decode().partition("\n")
            link.breaker(name, domain or None, (until - now) / 1000)

    async def _call_sync(self, ops: list[bytes | str], want: int) -> list[Any]:
        self.round_trips += 1
        dedupe = "bloom" if self._bloom is not None else "set"
        args = [self._prefix, self.worker, str(self._ttl_ms), str(want), dedupe, self._epoch]
        args.append(str(self._config.max_pages))
        reply: list[Any] = await self._sync_script(keys=self._keys("seen"), args=[*args, *ops])
        if reply[0] not in (b"fenced", b"lost"):
            self._epoch = reply[11].decode()
        return list(reply)

    async def aclose(
        self, stats: StatsCollector, items_length: int | None
    ) -> dict[str, int] | None:
        """Send what is left, hand back unfinished leases, merge the stats;
        returns the crawl-wide totals so far."""
        if self._client is None or self._broken is not None:
            return None
        if self._fenced:
            await self._cut_own_file()
            return None
        self._items_length = items_length
        with trio.move_on_after(10) as scope:
            while True:
                ops = self._ops
                if self._output is not None:
                    ops = [*ops, "o", self._output, str(items_length)]
                try:
                    last = await self._call_sync(ops, 0)
                    if last[0] == b"lost":
                        self._lost(last[1])
                        return None
                    self.acked += self._acks
                    self._ops = []
                    self.round_trips += 1
                    reply: list[Any] = await self._close_script(
                        keys=self._keys("seen"),
                        args=[self._prefix, self.worker, self._host, *_counters(stats)],
                    )
                    break
                except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
                    log.warning("Redis unreachable at the end; retrying", error=str(exc))
                    await trio.sleep(0.5)
        if scope.cancelled_caught:
            log.error(
                "could not reach Redis to hand back this worker's requests; they return "
                "to the queue when its lease expires",
                lease_ttl=self._config.lease_ttl,
            )
            return None
        merged, live, orphans = reply
        for i in range(0, len(orphans), 2):
            _cut_orphan(orphans[i].decode(), orphans[i + 1])
        totals = {k.decode(): int(v) for k, v in zip(merged[::2], merged[1::2], strict=True)}
        totals["workers_running"] = int(live)
        log.info(
            "redis round trips",
            per_page=round(self.round_trips / max(1, self.acked), 3),
            round_trips=self.round_trips,
            pages_acknowledged=self.acked,
        )
        return totals

    async def _cut_own_file(self) -> None:
        """Fenced: other workers fetch again what we did not acknowledge, so
        our items file goes back to what Redis holds as committed."""
        if self._output is None:
            return
        client = self._client
        assert client is not None
        with trio.move_on_after(10):
            try:
                committed = await client.hget(self._key("outputs"), self._output)
            except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
                log.error("cannot read this worker's committed length", error=str(exc))
                return
            if committed is not None:
                _cut_orphan(self._output, committed)

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _keys(self, *names: str) -> list[str]:
        """A script's keys: these, and the one never written (see
        :func:`~crawlmesh._state._redis._client.resharding`)."""
        return [*(self._prefix + name for name in names), self._prefix + "never"]


# How many arguments each SYNC op takes ('r' takes 1 + its count more).
_ARITY = {"p": 5, "a": 1, "m": 2, "o": 2, "s": 0, "k": 3, "b": 2, "x": 2, "r": 1}


class _Mark:
    """A seen_first() call's answer, once a sync brings it."""

    __slots__ = ("answered", "new")

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.new = True


def _pushes(ops: list[bytes | str]) -> list[tuple[str, bytes]]:
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


def _newer(flat: list[bytes], seen: dict[bytes, int]) -> list[tuple[bytes, int]]:
    """The (key, deadline) pairs of a reply's flat list that are later than
    the ones already applied (recorded in ``seen``)."""
    out = []
    for i in range(0, len(flat), 2):
        key, until = flat[i], int(flat[i + 1])
        if seen.get(key, 0) < until:
            seen[key] = until
            out.append((key, until))
    if len(seen) > 10_000:
        seen.clear()
    return out


def _cluster_hint(exc: BaseException) -> dict[str, str]:
    """A log key for a MOVED reply to a plain ``redis://`` client."""
    if isinstance(exc, coredis.exceptions.MovedError):
        return {"hint": "this Redis is a Cluster node: use --backend redis+cluster://HOST:PORT"}
    return {}


def _counters(stats: StatsCollector) -> list[str]:
    """The counters of ``stats`` as name/value pairs for HINCRBY."""
    out: list[str] = ["workers", "1"]
    for name in ("pages", "bytes", "items", "scheduled", "unfinished"):
        out += (name, str(int(getattr(stats, name))))
    for group in ("errors", "filtered", "status"):
        for key, value in getattr(stats, group).items():
            out += (f"{group}.{key}", str(int(value)))
    return out


def _cut_orphan(file: str, committed: bytes) -> None:
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
