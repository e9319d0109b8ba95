"""The shared rate limit (GCRA in Redis) says how long it made a request
wait, for the crawl's rate-limit wait metrics (reason ``shared``)."""

from __future__ import annotations

import trio

from distributed.redis_server import RedisServer
from distributed.test_mesh_share import balancer, worker


async def test_the_shared_gate_returns_the_seconds_it_waited(redis: RedisServer) -> None:
    async with worker(redis, balancer((1,))) as backend:
        waits = []
        for _ in range(5):
            started = trio.current_time()
            waited = await backend.gate("rate-waits.test", 20.0, 1)
            waits.append(waited)
            assert trio.current_time() - started >= waited
    # A burst of two at once, then one every 50 ms.
    assert waits[:2] == [0.0, 0.0]
    assert all(0 < w <= 0.05 for w in waits[2:]), waits
