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

import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import coredis
import coredis.exceptions
import structlog
import trio

from ..._exceptions import BackendError, SettingsError, sole_leaf
from ..._frontier import FingerprintSet
from ..._observe import StatsCollector
from ..._request import Request
from ..._settings import BackendSettings
from ..._spider import Spider
from ..._util._redact import register_url_secrets
from .._backend import EngineLink, Resume
from .._records import RequestCodec
from ._bloom import BloomPositions
from ._client import UNREACHABLE, open_client, redact, resharding
from ._itemsfile import cut_orphan, cut_own_file
from ._outage import Outage
from ._outbox import Outbox, pushes
from ._session import RedisSession
from ._share import SharedLimits

__all__ = ["RedisBackend"]

log = structlog.get_logger("crawlmesh.redis")

# A sync with new requests waits this long for more to join its batch.
_LINGER = 0.005
# How often a worker with room for work and nothing claimed asks again.
_POLL = 0.05
# How long a worker starting during a reshard waits for the crawl's slot.
_JOIN_PATIENCE = 60.0


class RedisBackend:
    """The crawl's frontier, dupe filter, limits and stats in Redis.

    It runs the sync loop and a worker's start and end, over an
    :class:`Outbox` (the ops for the next sync), :class:`SharedLimits` (the
    shared rate limiter, sessions and breakers) and a :class:`RedisSession`
    (the crawl's keys and scripts).

    Args:
        config: the ``backend`` settings (its ``url`` names the Redis).
        spider: whose methods stored callbacks name; its name is the
            crawl's key prefix unless ``config.namespace`` says otherwise.
        concurrency: the engine's; a worker keeps about twice this claimed.
        outputs: the feeds' paths (their names), those that are regular
            files; each is claimed in Redis for this worker, and its
            committed length kept there under ``HOST:REALPATH``.
    """

    keeps_unfinished = True  # for another worker, or a later run
    journals = True
    shared = True

    def __init__(
        self,
        config: BackendSettings,
        spider: Spider,
        *,
        concurrency: int,
        outputs: Sequence[str] = (),
    ) -> None:
        self._config = config
        register_url_secrets(config.url)  # its password, masked in every log line
        self._where = f"--backend {redact(config.url)}"
        namespace = config.namespace or spider.name
        self._session = RedisSession(f"crawlmesh:{{{namespace}}}:")
        self._limits = SharedLimits(self._session)
        self._codec = RequestCodec(spider, self._where)
        self._host = socket.gethostname()
        self.worker = f"{self._host}:{os.getpid()}:{secrets.token_hex(3)}"
        # Feed name -> its key in Redis.
        self._outputs = {name: f"{self._host}:{os.path.realpath(name)}" for name in outputs}
        self._ttl_ms = int(config.lease_ttl * 1000)
        self._target = max(2 * concurrency, config.claim)
        self._bloom = BloomPositions(config.bloom_capacity) if config.dedupe == "bloom" else None
        # What this worker has seen: duplicates it knows of never leave it.
        self.dupefilter = FingerprintSet()
        self._outbox = Outbox(self.worker)
        self._leases: dict[int, tuple[Request, bytes]] = {}  # id(request) -> (it, its member)
        self._syncing = False  # run() is running
        self._lengths: dict[str, int] = {}
        self._sent_lengths: dict[str, int] = {}
        self._drained = False
        self._seeding = False
        self._start_finished = False  # our start() ran to its end
        self._fenced = False
        self._broken: str | None = None  # Redis refused our script: why
        self._uncertain = False  # a sync failed after it may have run
        self._epoch = ""  # the crawl's, from our first sync: its loss is noticed
        self._capped = False  # the crawl handed out backend.max_pages requests
        self._link: EngineLink | None = None
        self.acked = 0

    @property
    def round_trips(self) -> int:
        """Calls made to Redis (scripts)."""
        return self._session.round_trips

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
                self._session.attach(client)
                resume = await self._first_contact()
                connected = True
                yield resume
        except (*UNREACHABLE, coredis.exceptions.RedisError, BaseExceptionGroup) as exc:
            # (The client's task group may wrap it.)
            error = None if connected else _connect_error(sole_leaf(exc), where)
            if error is None:
                raise
            raise error from None

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
        committed: dict[str, int] = {}
        for name, output in self._outputs.items():
            reply = await self._session.open(
                [self._session.prefix, self.worker, output, str(self._ttl_ms)]
            )
            if reply[0] == b"busy":
                raise BackendError(
                    f"another live worker ({reply[1].decode()}) writes the items file "
                    f"{output.partition(':')[2]}: give each worker its own -o"
                )
            if reply[1]:
                committed[name] = int(reply[1])
        reply = await self._call_sync([], 0)
        state, seed, queued, leased = reply[0], reply[1], int(reply[2]), int(reply[3])
        self._seeding = state == b"seeding"
        resumed = seed == b"done" or queued > 0 or leased > 0
        self._limits.note(reply, self._link)
        log.info(
            "joined a shared crawl" if resumed else "starting a shared crawl",
            backend=redact(self._config.url),
            worker=self.worker,
            queued=queued,
            leased=leased,
            seeding=self._seeding,
        )
        return Resume(resumed=resumed, lengths=committed, start_done=not self._seeding)

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
        check = self._outbox.token() if request.dont_filter and not seed else "1"
        self._outbox.push(domain, request.priority, record, key, check)
        return False

    def seen(self, fp: bytes) -> None:
        self._outbox.seen(self._dedupe_key(fp))

    async def seen_first(self, fp: bytes) -> bool:
        # Answered by the next sync; the same token if that sync is sent
        # again, so a lost reply cannot turn "new" into "seen".
        if not self._syncing or self._fenced or self._broken is not None:
            return True
        return await self._outbox.seen_first(self._dedupe_key(fp))

    def _dedupe_key(self, fp: bytes) -> bytes | str:
        return fp if self._bloom is None else self._bloom.positions(fp)

    def finished(self, request: Request) -> None:
        entry = self._leases.pop(id(request), None)
        if entry is not None:
            self._outbox.ack(entry[1])
        self._outbox.kick.set()

    def commit(self, lengths: Mapping[str, int], stats: StatsCollector) -> None:
        self._lengths = dict(lengths)

    def mark_start_done(self) -> None:
        self._start_finished = True
        self._outbox.start_done()

    def pause(self, domain: str, seconds: float) -> None:
        self._outbox.pause(domain, self._limits.pause(domain, seconds))

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        return await self._limits.gate(domain, key, rate, burst)

    # -- the MeshShare protocol (the balancer's sessions and breakers) -----------

    @property
    def mesh_share(self) -> RedisBackend:
        return self

    async def stick(self, session: str, node: str, ttl: float) -> str:
        return await self._limits.stick(session, node, ttl)

    def session_moved(self, session: str, node: str, ttl: float) -> None:
        self._outbox.session_moved(session, node, max(1, int(ttl * 1000)))

    def breaker_opened(self, node: str, domain: str | None, seconds: float) -> None:
        self._outbox.breaker_opened(f"{node}\n{domain or ''}", self._limits.until(seconds))

    async def room(self) -> None:
        while self._outbox.full and not self._fenced:
            await self._outbox.wait_room()

    @property
    def drained(self) -> bool:
        return self._drained or self._fenced or self._broken is not None

    async def run(self) -> None:
        self._syncing = True
        try:
            await self._sync_loop()
        finally:
            self._syncing = False
            self._outbox.answer_marks(None)  # (stopped: nothing will answer them)

    async def _sync_loop(self) -> None:
        link, outbox = self._link, self._outbox
        assert link is not None
        outage = Outage(self._config.lease_ttl)
        while not self._fenced and self._broken is None:
            want = max(0, self._target - link.backlog())
            if not outbox.ops:
                idle = self._config.lease_ttl / 4  # the heartbeat
                with trio.move_on_after(_POLL if want and not self._drained else idle):
                    await outbox.kick.wait()
            await trio.sleep(_LINGER)
            outbox.kick = trio.Event()
            want = max(0, self._target - link.backlog())
            taken, acks = outbox.take()
            ops = list(taken)
            # The length as of these acks (pages may finish during the call).
            lengths = self._lengths
            ops += _length_ops(self._outputs, lengths, self._sent_lengths)
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
                if not outage.failed(exc):
                    self._broken = str(exc)
                    log.error(
                        "Redis refused the crawl's script; stopping",
                        error=str(exc),
                        **_cluster_hint(exc),
                    )
                    link.stop("backend_error")
                    link.wake()
                    return
                await outage.wait()
                continue
            outage.over()
            if reply[0] == b"lost":
                self._put_back(taken, acks, uncertain=False)  # (its requests are ended here)
            self._uncertain = False
            self.acked += acks
            self._sent_lengths = lengths
            outbox.made_room()
            self._handle(reply, link)

    def _put_back(self, taken: list[bytes | str], acks: int, *, uncertain: bool) -> None:
        """A sync failed: its batch goes first in the next one (or aclose's)."""
        self._outbox.put_back(taken, acks)
        self._uncertain = self._uncertain or uncertain

    def _handle(self, reply: list[Any], link: EngineLink) -> None:
        if reply[0] == b"lost":
            self._lost(reply[1])
            link.stop("crawl_lost")
            # The new requests Redis never stored end with the crawl (in
            # the errors file), as the ones this worker holds do.
            for domain, record in pushes(self._outbox.ops):
                link.feed(domain, self._codec.decode(record))
            self._outbox.ops = []
            link.wake()
            return
        if reply[0] == b"fenced":
            self._fenced = True
            self._limits.off()
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
            self._outbox.start_done()  # ours ended while another held seeding: say it again
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
                self._outbox.drop(member)
                continue
            self._leases[id(request)] = (request, member)
            link.feed(domain.decode(), request)
        self._limits.note(reply, link)
        self._outbox.answer_marks(reply[13])
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
        drained = seed == b"done" and queued == 0 and leased == 0 and not self._outbox.ops
        if drained != self._drained:
            self._drained = drained
            link.wake()
        if len(claimed) // 2 >= max(1, self._target // 2):
            self._outbox.kick.set()  # there may be more to claim

    def _lost(self, epoch: bytes | None) -> None:
        """The crawl this worker joined is not in Redis any more: say why,
        and stop talking to Redis (a sync would start the crawl over)."""
        self._broken = "crawl lost"
        _log_lost(epoch, key=self._session.key("epoch"), worker=self.worker, joined=self._epoch)

    async def _call_sync(self, ops: list[bytes | str], want: int) -> list[Any]:
        dedupe = "bloom" if self._bloom is not None else "set"
        args = [self._session.prefix, self.worker, str(self._ttl_ms), str(want), dedupe]
        args += (self._epoch, str(self._config.max_pages))
        reply = await self._session.sync([*args, *ops])
        if reply[0] not in (b"fenced", b"lost"):
            self._epoch = reply[11].decode()
        return list(reply)

    async def aclose(
        self, stats: StatsCollector, lengths: Mapping[str, int]
    ) -> dict[str, int] | None:
        """Send what is left, hand back unfinished leases, merge the stats;
        returns the crawl-wide totals so far."""
        if self._session.client is None or self._broken is not None:
            return None
        if self._fenced:
            for output in self._outputs.values():
                await cut_own_file(self._session, output)
            return None
        self._lengths = dict(lengths)
        with trio.move_on_after(10) as scope:
            while True:
                ops = self._outbox.ops
                ops = [*ops, *_length_ops(self._outputs, self._lengths, {})]
                try:
                    last = await self._call_sync(ops, 0)
                    if last[0] == b"lost":
                        self._lost(last[1])
                        return None
                    self.acked += self._outbox.acks
                    self._outbox.ops = []
                    reply = await self._session.close(
                        [self._session.prefix, self.worker, self._host, *_counters(stats)]
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
        totals = _totals(reply)
        log.info(
            "redis round trips",
            per_page=round(self.round_trips / max(1, self.acked), 3),
            round_trips=self.round_trips,
            pages_acknowledged=self.acked,
        )
        return totals


def _connect_error(leaf: BaseException, where: str) -> BackendError | None:
    """The error to raise for ``leaf``, raised while connecting to Redis at
    ``where`` (None: raise it as it is)."""
    if isinstance(leaf, UNREACHABLE):
        return BackendError(f"cannot reach Redis at {where}: {leaf}")
    if isinstance(leaf, coredis.exceptions.MovedError):
        netloc = urlsplit(where).netloc
        return BackendError(
            f"Redis at {where} is a node of a Redis Cluster (it answered MOVED: the "
            f"crawl's slot {leaf.slot_id} is on {leaf.host}:{leaf.port}): use "
            f"--backend redis+cluster://{netloc}"
        )
    if isinstance(leaf, coredis.exceptions.RedisError):
        return BackendError(f"Redis at {where}: {leaf}")
    return None


def _cluster_hint(exc: BaseException) -> dict[str, str]:
    """A log key for a MOVED reply to a plain ``redis://`` client."""
    if isinstance(exc, coredis.exceptions.MovedError):
        return {"hint": "this Redis is a Cluster node: use --backend redis+cluster://HOST:PORT"}
    return {}


def _length_ops(
    outputs: Mapping[str, str], lengths: Mapping[str, int], sent: Mapping[str, int]
) -> list[str]:
    """The ``o`` ops for the feeds (``outputs``: name -> key in Redis)
    whose length is not the one ``sent``."""
    ops: list[str] = []
    for name, length in lengths.items():
        output = outputs.get(name)
        if output is not None and sent.get(name) != length:
            ops += ("o", output, str(length))
    return ops


def _counters(stats: StatsCollector) -> list[str]:
    """The counters of ``stats`` as name/value pairs for HINCRBY."""
    out: list[str] = ["workers", "1"]
    for name in ("pages", "bytes", "items", "scheduled", "unfinished"):
        out += (name, str(int(getattr(stats, name))))
    for group in ("errors", "filtered", "status"):
        for key, value in getattr(stats, group).items():
            out += (f"{group}.{key}", str(int(value)))
    return out


def _totals(reply: list[Any]) -> dict[str, int]:
    """The crawl-wide totals in the CLOSE script's reply, after cutting the
    items files it names of workers that died on this host."""
    merged, live, orphans = reply
    for i in range(0, len(orphans), 2):
        cut_orphan(orphans[i].decode(), orphans[i + 1])
    totals = {k.decode(): int(v) for k, v in zip(merged[::2], merged[1::2], strict=True)}
    totals["workers_running"] = int(live)
    return totals


def _log_lost(epoch: bytes | None, *, key: str, worker: str, joined: str) -> None:
    """Why the crawl is not in Redis any more (``epoch``: the one there now)."""
    if epoch is None:
        log.error(
            "the crawl's state is gone from Redis (a Redis restarted without persistence, "
            "FLUSHALL or FLUSHDB, or eviction under maxmemory); stopping rather than crawling "
            "it all again into the same items files. Run Redis with appendonly yes and "
            "maxmemory-policy noeviction; to start over, delete the items files and run "
            "the workers again",
            key=key,
            worker=worker,
        )
    else:
        log.error(
            "the crawl in Redis is not the one this worker joined (its keys were deleted "
            "and a new crawl started); stopping",
            key=key,
            joined=joined,
            found=epoch.decode(),
        )
