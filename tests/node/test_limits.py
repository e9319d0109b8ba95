"""Per-client limits, load shedding and the SIGTERM drain, against real node
processes. Every load here is bounded in requests and time."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import httpx
import trio

from node.nodes import node_process, wait_exit, wait_health, wait_in_flight


def from_address(address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (another "client")."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


OTHER = "second-token-bbbbbbbbbbbbbbbb"


async def test_a_client_over_its_rate_is_refused_and_others_are_not(
    tmp_path: Path, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--client-rate", "2", "--client-burst", "3",
        extra_tokens=[OTHER],
    ) as n:  # fmt: skip
        body = {"url": f"{target_url}/"}
        async with from_address("127.0.0.1") as a, from_address("127.0.0.2") as b:
            answers = [await a.post(f"{n.url}/scrape", json=body, headers=n.auth) for _ in range(8)]
            codes = [r.status_code for r in answers]
            # A burst of 1 + 3, then refusals (8 requests take well under 2 s).
            assert codes[:4] == [200] * 4
            refused = [r for r in answers if r.status_code == 429]
            assert len(refused) >= 3
            assert all(r.json()["error"]["code"] == "rate_limited" for r in refused)
            assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
            # A client is its token: the same token from another address (a
            # worker behind the same NAT, or not) shares the allowance ...
            same = await b.post(f"{n.url}/scrape", json=body, headers=n.auth)
            assert same.status_code == 429
            # ... and another token on the same address has its own.
            other = await a.post(
                f"{n.url}/scrape", json=body, headers={"Authorization": f"Bearer {OTHER}"}
            )
            assert other.status_code == 200


async def test_a_client_over_its_slots_and_queue_is_refused(
    tmp_path: Path, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--client-concurrency", "2", "--client-queue", "1",
        extra_tokens=[OTHER],
    ) as n:  # fmt: skip
        body = {"url": f"{target_url}/slow?s=1"}
        codes: list[int] = []
        async with httpx.AsyncClient(timeout=30) as a:

            async def one(token: str) -> None:
                auth = {"Authorization": f"Bearer {token}"}
                r = await a.post(f"{n.url}/scrape", json=body, headers=auth)
                codes.append(r.status_code)

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(4):  # 2 fetch, 1 waits for a slot, 1 is refused
                        nursery.start_soon(one, n.token)
                    health = await wait_health(a, n, in_flight=2, queue_size=1)
                    nursery.start_soon(one, OTHER)
        assert (health["in_flight"], health["queue_size"]) == (2, 1)
        assert sorted(codes) == [200, 200, 200, 200, 429]


async def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path, target_url: str) -> None:
    with node_process(
        tmp_path, "--allow-private", "--concurrency", "2", "--max-queue", "2",
        "--client-concurrency", "0",
    ) as n:  # fmt: skip
        body = {"url": f"{target_url}/slow?s=1"}
        answers: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=30) as client:

            async def one() -> None:
                answers.append(await client.post(f"{n.url}/scrape", json=body, headers=n.auth))

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(8):
                        nursery.start_soon(one)
                    health = await wait_health(client, n, in_flight=2, queue_size=2)
        assert (health["in_flight"], health["queue_size"]) == (2, 2)
        assert health["status"] == "degraded"  # the queue is more than half full
        ok = [r for r in answers if r.status_code == 200]
        shed = [r for r in answers if r.status_code == 503]
        assert (len(ok), len(shed)) == (4, 4)
        for r in shed:
            assert r.json()["error"]["code"] == "overloaded"
            assert r.headers["retry-after"] == "1"


async def test_200_concurrent_clients_get_answers_and_memory_stays_bounded(
    tmp_path: Path, target_url: str
) -> None:
    """200 clients, 5 requests each (1,000 in all), against one node with 16
    fetch slots and a queue of 32: no crash, every answer a 200 or a 503 with
    Retry-After, and the node's memory grows by less than 64 MB."""
    with node_process(
        tmp_path, "--allow-private", "--concurrency", "16", "--max-queue", "32",
        "--client-concurrency", "0", "--client-rate", "0",
    ) as n:  # fmt: skip
        before = n.rss()
        statuses: dict[int, int] = {}
        missing_retry_after = 0
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:

            async def client_task(i: int) -> None:
                nonlocal missing_retry_after
                for j in range(5):
                    body = {"url": f"{target_url}/slow?s=0.02&c={i}&r={j}"}
                    r = await client.post(f"{n.url}/scrape", json=body, headers=n.auth)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 503 and "retry-after" not in r.headers:
                        missing_retry_after += 1

            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    for i in range(200):
                        nursery.start_soon(client_task, i)
            health = (await client.get(f"{n.url}/health")).json()
        assert sum(statuses.values()) == 1000
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.get(503, 0) > 0, statuses
        assert statuses.get(200, 0) > 0, statuses
        assert missing_retry_after == 0
        assert n.proc.poll() is None
        assert health["status"] == "healthy"
        assert (health["in_flight"], health["queue_size"]) == (0, 0)
        assert n.rss() - before < 64 * 1024 * 1024


async def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(
    tmp_path: Path, target_url: str
) -> None:
    with node_process(tmp_path, "--allow-private", "--drain-timeout", "20") as n:
        answers: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=30) as client:

            async def slow() -> None:
                body = {"url": f"{target_url}/slow?s=1.5"}
                answers.append(await client.post(f"{n.url}/scrape", json=body, headers=n.auth))

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(slow)
                    await wait_in_flight(client, n, 3)
                    n.proc.send_signal(signal.SIGTERM)
                    health = await wait_health(client, n, status="draining")
                    late = await client.post(
                        f"{n.url}/scrape", json={"url": f"{target_url}/"}, headers=n.auth
                    )
        assert health["status"] == "draining"
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "draining"
        assert "retry-after" in late.headers
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert await wait_exit(n, 15) == 0
        assert "drained" in n.log.read_text()


async def test_the_drain_ends_at_its_deadline(tmp_path: Path, target_url: str) -> None:
    with node_process(tmp_path, "--allow-private", "--drain-timeout", "1") as n:
        async with httpx.AsyncClient(timeout=30) as client:

            async def hang() -> None:
                # The node closes the connection at its deadline.
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(
                        f"{n.url}/scrape", json={"url": f"{target_url}/hang", "timeout": 60},
                        headers=n.auth,
                    )  # fmt: skip

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hang)
                await wait_in_flight(client, n, 1)
                started = time.monotonic()
                n.proc.send_signal(signal.SIGTERM)
                status = await wait_exit(n, 20)
                nursery.cancel_scope.cancel()
        # The drain deadline (1 s) plus the grace for open connections (2 s).
        assert time.monotonic() - started < 6
        assert status == 0
        assert "drain timed out" in n.log.read_text()
