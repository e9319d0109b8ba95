"""The Redis backend's Lua scripts on a real redis-server: leases, reaping,
fencing, an outage's grace, and a new items file's baseline."""

from __future__ import annotations

from typing import Any

import coredis

from crawlmesh._state._redis._scripts import OPEN, SYNC
from distributed.redis_server import RedisServer

P = "crawlmesh:{scripts}:"
TTL = "2000"


async def sync(
    client: Any, worker: str, want: int = 0, *ops: str, epoch: str = "", cap: int = 0
) -> list[Any]:
    script = client.register_script(SYNC)
    reply: list[Any] = await script(
        keys=[P + "seen"], args=[P, worker, TTL, str(want), "set", epoch, str(cap), *ops]
    )
    return reply


def push(n: int) -> tuple[str, ...]:
    return ("p", "a.test", "0", f"record-{n}", f"fp-{n}", "1")


async def test_a_late_worker_keeps_its_leases_until_another_reaps_them(
    redis: RedisServer,
) -> None:
    async with coredis.Redis(port=redis.port) as client:
        reply = await sync(client, "w1", 2, *push(1), *push(2))
        assert len(reply[7]) == 4  # two claimed (member, domain pairs)
        # w1's lease runs out with nobody else syncing: its next sync renews
        # it, and it holds both requests still.
        await client.zadd(P + "workers", {"w1": 1})
        reply = await sync(client, "w1")
        assert reply[0] != b"fenced"
        assert int(reply[3]) == 2  # leased
        assert int(reply[4]) == 0  # nothing reaped
        # Run out again, and another worker syncs first: w1's requests go
        # back to the queue and w1 is fenced off.
        await client.zadd(P + "workers", {"w1": 1})
        reply = await sync(client, "w2")
        assert int(reply[4]) == 2
        assert (int(reply[2]), int(reply[3])) == (2, 0)  # queued, leased
        assert (await sync(client, "w1"))[0] == b"fenced"


async def test_an_outage_does_not_count_against_the_leases(redis: RedisServer) -> None:
    async with coredis.Redis(port=redis.port) as client:
        await sync(client, "w1", 1, *push(1))
        await sync(client, "w2")
        # Nobody synced for 10 s (Redis was down), and both leases ran out
        # meanwhile: the first sync after it extends them instead of reaping.
        now_ms = int((await client.time()).timestamp() * 1000)
        await client.set(P + "last", str(now_ms - 10_000))
        await client.zadd(P + "workers", {"w1": now_ms - 5_000})
        reply = await sync(client, "w2")
        assert int(reply[4]) == 0
        assert (await sync(client, "w1"))[0] != b"fenced"


async def test_a_new_items_file_is_committed_at_zero(redis: RedisServer) -> None:
    async with coredis.Redis(port=redis.port) as client:
        script = client.register_script(OPEN)
        reply = await script(keys=[P + "seen"], args=[P, "w1", "host:/x.jsonl", TTL])
        assert reply == [b"ok", b"0"]
        # Opened, w1 counts as live: a second worker may not take its file.
        reply = await script(keys=[P + "seen"], args=[P, "w2", "host:/x.jsonl", TTL])
        assert reply == [b"busy", b"w1"]


async def test_a_batch_sent_twice_queues_nothing_twice(redis: RedisServer) -> None:
    # After a lost reply the worker sends its batch again: the deduplicated
    # push is refused by the seen set, the dont_filter one by its token.
    batch = (*push(1), "p", "a.test", "0", "record-x", "fp-x", "w1:7")
    async with coredis.Redis(port=redis.port) as client:
        await sync(client, "w1", 0, *batch)
        reply = await sync(client, "w1", 0, *batch)
        assert int(reply[5]) == 0  # pushed this time
        assert int(reply[2]) == 2  # queued in all
        # A new token is a new request, queued although its URL was seen.
        reply = await sync(client, "w1", 0, "p", "a.test", "0", "record-x", "fp-x", "w1:8")
        assert int(reply[2]) == 3


async def test_a_worker_that_knew_the_crawl_finds_it_lost_and_changes_nothing(
    redis: RedisServer,
) -> None:
    async with coredis.Redis(port=redis.port) as client:
        epoch = (await sync(client, "w1", 1, *push(1)))[11].decode()
        assert epoch
        assert (await sync(client, "w2"))[11].decode() == epoch  # one crawl, one epoch
        # Redis restarted empty (or FLUSHALL): the next sync of a worker that
        # knew the crawl says so, and re-creates nothing (no fresh seeding).
        await client.flushall()
        assert await sync(client, "w1", 1, *push(2), epoch=epoch) == [b"lost", None]
        assert await client.dbsize() == 0
        # A new crawl there (a new worker) has a new epoch, which the old
        # worker does not take for its own.
        fresh = (await sync(client, "w3"))[11].decode()
        assert fresh != epoch
        assert await sync(client, "w1", epoch=epoch) == [b"lost", fresh.encode()]


async def test_a_crawl_wide_cap_limits_what_is_handed_out_once(redis: RedisServer) -> None:
    async with coredis.Redis(port=redis.port) as client:
        pushes = [op for n in range(5) for op in push(n)]
        reply = await sync(client, "w1", 5, *pushes, cap=3)
        assert len(reply[7]) == 2 * 3  # three claimed, not five
        assert reply[12] == 1  # the cap is reached
        assert len((await sync(client, "w2", 5, cap=3))[7]) == 0
        # w1 hands its three back unfetched ("r" with none held): they are
        # handed out again, and count once.
        reply = await sync(client, "w1", 0, "r", "0", cap=3)
        assert reply[12] == 0
        reply = await sync(client, "w2", 5, cap=3)
        assert len(reply[7]) == 2 * 3
        assert reply[12] == 1
        assert int(reply[2]) == 2  # two still queued, never handed out
