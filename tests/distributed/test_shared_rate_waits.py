"""The shared rate limit (GCRA in Redis) says how long it made a request
wait, for the crawl's rate-limit wait metrics (reason ``shared``)."""

from __future__ import annotations

import itertools

import trio

from crawlmesh._state._redis import RedisBackend
from distributed.redis_server import RedisServer
from distributed.test_mesh_share import balancer, worker


def paused_in_redis(redis: RedisServer, domain: str) -> bool:
    """Whether the crawl's pauses in Redis (the mesh-share spider's) hold ``domain``."""
    return redis.command("HEXISTS", "crawlmesh:{mesh-share}:pause", domain) == b":1"


async def test_the_shared_gate_returns_the_seconds_it_waited(redis: RedisServer) -> None:
    async with worker(redis, balancer((1,))) as backend:
        waits = []
        for _ in range(5):
            started = trio.current_time()
            waited = await backend.gate("rate-waits.test", "rate-waits.test", 20.0, 1)
            waits.append(waited)
            assert trio.current_time() - started >= waited
    # A burst of two at once, then one every 50 ms.
    assert waits[:2] == [0.0, 0.0]
    assert all(0 < w <= 0.05 for w in waits[2:]), waits


async def test_a_pause_holds_the_slots_already_given_out_and_resumes_at_the_rate(
    redis: RedisServer,
) -> None:
    # Two workers under one 10/s rule, eight requests each waiting for a
    # slot of the shared schedule (slots up to ~1.6 s ahead) when one worker
    # gets a Retry-After of 1 s.
    sends: list[float] = []
    under_way = trio.Event()  # four sent: the other slots are given out ahead

    async def send(backend: RedisBackend) -> None:
        for _ in range(2):
            await backend.gate("pause.test", "pause.test", 10.0, 0)
            sends.append(trio.current_time())
            if len(sends) == 4:
                under_way.set()

    async with (
        worker(redis, balancer((1,))) as a,
        worker(redis, balancer((1,))) as b,
        trio.open_nursery() as nursery,
    ):
        for backend in (a, b):
            for _ in range(4):
                nursery.start_soon(send, backend)
        with trio.fail_after(10):
            await under_way.wait()
        paused_at = trio.current_time()
        a.pause("pause.test", 1.0)
    before = [t for t in sends if t <= paused_at]
    during = [t - paused_at for t in sends if paused_at < t < paused_at + 0.98]
    after = sorted(t for t in sends if t >= paused_at + 0.98)
    assert len(sends) == 16  # every request got a slot in the end
    assert 3 <= len(before) <= 6, before
    # Not one from either worker during the pause (a slot due within a few ms
    # of it may be on its way before Redis has the pause)...
    assert all(t < 0.02 for t in during), during
    # ...and then one every 100 ms, not a burst.
    gaps = [later - earlier for earlier, later in itertools.pairwise(after)]
    assert after[0] - paused_at < 1.1
    assert all(gap > 0.08 for gap in gaps), gaps


async def test_a_paused_domain_takes_no_new_slot_and_restarts_with_no_burst(
    redis: RedisServer,
) -> None:
    # A 10/s rule with a burst of 2, idle when one worker is told to wait
    # 0.6 s; then requests come to both workers during the pause (a worker
    # whose sync has not brought the pause yet still dispatches).
    sends: list[float] = []

    async def send(backend: RedisBackend) -> None:
        await backend.gate("idle.test", "idle.test", 10.0, 2)
        sends.append(trio.current_time())

    async with worker(redis, balancer((1,))) as a, worker(redis, balancer((1,))) as b:
        paused_at = trio.current_time()
        a.pause("idle.test", 0.6)
        # Once a's sync has put the pause in Redis, b's gate finds it there.
        with trio.fail_after(5):
            # (Another process's state: nothing to wait on but a query.)
            while not await trio.to_thread.run_sync(paused_in_redis, redis, "idle.test"):  # noqa: ASYNC110
                await trio.sleep(0.005)
        async with trio.open_nursery() as nursery:
            for backend in (a, b, a, b, a, b):
                nursery.start_soon(send, backend)
    times = sorted(t - paused_at for t in sends)
    assert len(times) == 6
    assert times[0] > 0.58, times  # nothing during the pause
    # From its end, one every 100 ms: the burst allowance is not handed out
    # to a site that just asked us to back off.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap > 0.08 for gap in gaps), gaps
