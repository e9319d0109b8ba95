"""Hostile clients against real node processes: clients that never read,
drip their heads or bodies, open too many connections, hang up, or come
from a web page. Each test is bounded in connections (at most a dozen
sockets) and time."""

from __future__ import annotations

import json
import resource
import signal
import socket
import time
from pathlib import Path

import httpx
import trio

from crawlmesh._node import Admission
from node.nodes import (
    NodeProc,
    node_process,
    wait_exit,
    wait_health,
    wait_in_flight,
    wait_metric,
)

OTHER = "second-token-bbbbbbbbbbbbbbbb"


def _hostport(node: NodeProc) -> tuple[str, int]:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def raw(node: NodeProc, source: str = "127.0.0.1", rcvbuf: int = 0) -> trio.SocketStream:
    """A raw connection to ``node`` from ``source``; a small ``rcvbuf`` makes
    a client that does not read stall the node's write sooner."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.bind((source, 0))
    await sock.connect(_hostport(node))
    return trio.SocketStream(sock)


def post_head(node: NodeProc, length: int, *, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token or node.token}\r\n"
    return (
        f"POST /scrape HTTP/1.1\r\nHost: {node.url[7:]}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def post(node: NodeProc, body: dict[str, object], **kw: str) -> bytes:
    data = json.dumps(body).encode()
    return post_head(node, len(data), **kw) + data


async def health(client: httpx.AsyncClient, node: NodeProc) -> dict[str, object]:
    data: dict[str, object] = (await client.get(f"{node.url}/health")).json()
    return data


async def closed_by_peer(stream: trio.SocketStream, within: float) -> bool:
    """Whether the node closes ``stream`` within ``within`` s (what it sent
    before is read and dropped)."""
    with trio.move_on_after(within):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


def metric(text: str, name: str, reason: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- 21: an answer nobody reads holds its slot, and its write times out -------


async def test_an_unread_answer_holds_its_slot_until_the_write_times_out(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--concurrency", "1", "--max-queue", "0",
        "--write-timeout", "2",
    ) as n:  # fmt: skip
        # 8 MB of answer: far more than the loopback socket buffers hold.
        stalled = await raw(n, rcvbuf=4096)
        await stalled.send_all(post(n, {"url": f"{target_url}/big?n=8000000"}))
        # The answer is counted once the fetch is done, before it is written:
        # what holds the slot from then on is the write.
        await wait_metric(client, n, 'crawlmesh_node_requests_total{code="ok"}', 1)
        assert (await health(client, n))["in_flight"] == 1
        # The write counts against the limits: the node is full.
        full = await client.post(f"{n.url}/scrape", json={"url": f"{target_url}/"}, headers=n.auth)
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "overloaded"
        # Then the write times out: the slot is free, the connection closed.
        with trio.fail_after(5):
            while (await health(client, n))["in_flight"]:  # noqa: ASYNC110  # another process
                await trio.sleep(0.1)
        assert await closed_by_peer(stalled, 5)
        await stalled.aclose()
        ok = await client.post(f"{n.url}/scrape", json={"url": f"{target_url}/"}, headers=n.auth)
        assert ok.status_code == 200
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert metric(metrics, "crawlmesh_node_suspicious_total", "write_timeout") == 1


# -- 22: the drain has a hard deadline; a second signal stops at once ---------


async def test_the_drain_ends_at_its_deadline_with_a_client_that_never_reads(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--drain-timeout", "1", "--write-timeout", "60"
    ) as n:
        stalled = await raw(n, rcvbuf=4096)
        await stalled.send_all(post(n, {"url": f"{target_url}/big?n=8000000"}))
        await wait_in_flight(client, n, 1)
        started = time.monotonic()
        n.terminate()
        assert await wait_exit(n, 20) == 0
        # The drain deadline (1 s) and the grace for open connections (2 s).
        assert time.monotonic() - started < 6
        assert "drain timed out" in n.log.read_text()
        await stalled.aclose()


async def test_a_second_signal_stops_the_drain_at_once(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--drain-timeout", "60", "--write-timeout", "60"
    ) as n:
        stalled = await raw(n, rcvbuf=4096)
        await stalled.send_all(post(n, {"url": f"{target_url}/big?n=8000000"}))
        await wait_in_flight(client, n, 1)
        n.terminate()
        await wait_health(client, n, status="draining")  # the first signal is taken
        assert n.proc.poll() is None  # draining
        started = time.monotonic()
        n.proc.send_signal(signal.SIGTERM)
        assert await wait_exit(n, 20) == 0
        assert time.monotonic() - started < 2
        await stalled.aclose()


# -- 23: bodies are read before queueing, and a client's are bounded ----------


async def test_slow_bodies_take_no_queue_place(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("body_timeout = 2.0\n")
    with node_process(
        tmp_path, "--allow-private", "--config", str(config), "--concurrency", "1",
        "--max-queue", "1", "--client-concurrency", "1", "--client-queue", "3",
        extra_tokens=[OTHER],
    ) as n:  # fmt: skip
        slow = []
        for _ in range(4):  # the client's bound: 1 slot + 3 waiting
            stream = await raw(n)
            await stream.send_all(post_head(n, 100))  # and never the body
            slow.append(stream)
        # All four in the node, their bodies awaited (their deadline is 2 s).
        await wait_metric(client, n, "crawlmesh_node_receiving", 4)
        # One more from the same client is refused at once ...
        over = await client.post(f"{n.url}/scrape", json={"url": f"{target_url}/"}, headers=n.auth)
        assert over.status_code == 429
        # ... while another client has the whole queue to itself.
        others = {"Authorization": f"Bearer {OTHER}"}
        ok = await client.post(f"{n.url}/scrape", json={"url": f"{target_url}/"}, headers=others)
        assert ok.status_code == 200
        assert (await health(client, n))["queue_size"] == 0
        # The slow senders get 408 at the body deadline.
        with trio.fail_after(5):
            for stream in slow:
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive_some(4096)
                assert answer.startswith(b"HTTP/1.1 408")
                await stream.aclose()
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert "\ncrawlmesh_node_receiving 0.0\n" in metrics


# -- 24: connection caps and the header timeout ------------------------------


async def test_connections_are_capped_per_address_and_in_all(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("max_connections = 6\nmax_client_connections = 3\nheader_timeout = 1.5\n")
    with node_process(tmp_path, "--config", str(config)) as n:
        dripping = []
        for source in ("127.0.0.1",) * 3 + ("127.0.0.2",) * 3:
            stream = await raw(n, source)
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ends
            dripping.append(stream)
        # (No wait for the node to take them: it accepts in the order the
        # connections were made, so it holds those six before any made next.)

        async def refused(source: str) -> bytes:
            stream = await raw(n, source)
            with trio.fail_after(5):
                answer = await stream.receive_some(4096)
            await stream.aclose()
            return bytes(answer)

        # A fourth connection from one address: 503.
        assert (await refused("127.0.0.1")).startswith(b"HTTP/1.1 503")
        # A seventh in all takes the place of the oldest dawdler.
        seventh = await raw(n, "127.0.0.3")
        await seventh.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with trio.fail_after(5):
            assert (await seventh.receive_some(4096)).startswith(b"HTTP/1.1 200")
        await seventh.aclose()
        assert await closed_by_peer(dripping[0], 1)
        # The header timeout closes the other drippers, and the node serves again.
        for stream in dripping[1:]:
            assert await closed_by_peer(stream, 4)
        for stream in dripping:
            await stream.aclose()
        assert (await client.get(f"{n.url}/health")).status_code == 200
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert metric(metrics, "crawlmesh_node_suspicious_total", "connection_cap") == 1
        assert metric(metrics, "crawlmesh_node_suspicious_total", "evicted") == 1
        assert metric(metrics, "crawlmesh_node_suspicious_total", "header_timeout") == 5


async def test_a_slow_head_is_cut_but_a_slow_body_is_the_apps_to_bound(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("allow_private = true\nheader_timeout = 1.0\nbody_timeout = 10.0\n")
    with node_process(tmp_path, "--config", str(config)) as n:
        data = json.dumps({"url": f"{target_url}/"}).encode()
        stream = await raw(n)
        await stream.send_all(post_head(n, len(data)))
        # A head that never ends, on a connection taken after that one: once
        # the node cuts it, the header timeout has passed for both.
        dawdler = await raw(n)
        await dawdler.send_all(b"GET /health HTTP/1.1\r\n")
        assert await closed_by_peer(dawdler, 5)
        await dawdler.aclose()
        # Past the header timeout, within the body's.
        await stream.send_all(data)
        with trio.fail_after(5):
            answer = await stream.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        await stream.aclose()
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert metric(metrics, "crawlmesh_node_suspicious_total", "header_timeout") == 1


def _low_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_the_open_file_limit_is_raised_at_start_up(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with node_process(tmp_path, preexec_fn=_low_file_limit) as n:
        limits = Path(f"/proc/{n.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    soft = line.split()[3]
    assert soft == (str(hard) if hard != resource.RLIM_INFINITY else "unlimited") or int(soft) > 256


# -- 25: a node without auth answers only its own, loopback, JSON clients -----


async def test_a_node_without_auth_refuses_what_a_web_page_could_send(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(tmp_path, "--allow-private", auth=False) as n:
        body = {"url": f"{target_url}/"}
        scrape = f"{n.url}/scrape"
        # DNS rebinding: a page's own name pointed at 127.0.0.1.
        rebound = await client.post(scrape, json=body, headers={"Host": "evil.example"})
        assert rebound.status_code == 403
        assert rebound.json()["error"]["code"] == "forbidden"
        health = await client.get(f"{n.url}/health", headers={"Host": "evil.example:8700"})
        assert health.status_code == 403
        # A form or fetch() with text/plain (no CORS preflight).
        text = await client.post(
            scrape, content=json.dumps(body), headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 415
        assert text.json()["error"]["code"] == "invalid_request"
        # Cross-site requests: an Origin, or fetch metadata saying so (<img>).
        origin = await client.post(scrape, json=body, headers={"Origin": "https://evil.example"})
        assert origin.status_code == 403
        img = await client.get(
            scrape, params={"url": f"{target_url}/"}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert img.status_code == 403
        # The node's own clients pass: loopback Host names, JSON, no browser.
        for host in (n.url[7:], f"localhost:{n.url.rsplit(':', 1)[1]}", "[::1]:1"):
            ok = await client.post(scrape, json=body, headers={"Host": host})
            assert ok.status_code == 200, (host, ok.text)
        typed = await client.get(
            scrape, params={"url": f"{target_url}/"}, headers={"Sec-Fetch-Site": "none"}
        )
        assert typed.status_code == 200


# -- 26: limits per token; a client's share below capacity; auth failures ------


async def test_one_busy_token_cannot_take_every_slot(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    # Defaults: a client holds at most half of the 4 slots.
    with node_process(tmp_path, "--allow-private", "--concurrency", "4", extra_tokens=[OTHER]) as n:
        busy = {"url": f"{target_url}/slow?s=3"}
        async with trio.open_nursery() as nursery:
            for _ in range(8):  # same address, same token
                nursery.start_soon(
                    lambda: client.post(f"{n.url}/scrape", json=busy, headers=n.auth)
                )
            await wait_in_flight(client, n, 2)
            state = await wait_health(client, n, in_flight=2, queue_size=6)
            assert (state["in_flight"], state["queue_size"]) == (2, 6)
            # Another token on the same address is served at once.
            started = time.monotonic()
            quick = await client.post(
                f"{n.url}/scrape", json={"url": f"{target_url}/slow?s=0.2"},
                headers={"Authorization": f"Bearer {OTHER}"},
            )  # fmt: skip
            took = time.monotonic() - started
            nursery.cancel_scope.cancel()
        assert quick.status_code == 200
        assert took < 1.5


async def test_failed_auth_has_its_own_budget(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(
        tmp_path, "--allow-private", "--client-rate", "5", "--client-burst", "5"
    ) as n:
        body = {"url": f"{target_url}/"}
        codes = [(await client.post(f"{n.url}/scrape", json=body)).status_code for _ in range(30)]
        # 1 + 20 failures in a burst are 401; the guesser then gets 429 ...
        assert codes[:21] == [401] * 21
        assert set(codes[21:]) == {429}
        # ... and the token's own client on that address is not touched.
        ok = await client.post(f"{n.url}/scrape", json=body, headers=n.auth)
        assert ok.status_code == 200


async def test_a_free_slot_goes_to_the_client_holding_fewest() -> None:
    admission = Admission(2, 10, 1, client_slots=2)
    order: list[str] = []

    async def one(client: str) -> None:
        admission.admit()
        await admission.wait_slot(client)
        order.append(client)

    async with trio.open_nursery() as nursery:
        for client in ("a", "a", "a", "a", "b"):
            nursery.start_soon(one, client)
            await trio.testing.wait_all_tasks_blocked()
        assert order == ["a", "a"]
        admission.release_slot("a")  # b waited last but holds none
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["a", "a", "b"]
        admission.release_slot("a")
        admission.release_slot("b")
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["a", "a", "b", "a", "a"]


# -- 27: odd timeouts, hang-ups, slash redirects, header values ---------------


async def test_a_tiny_timeout_is_the_requests_fault(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    for timeout in (1e-7, 0.0, -1.0):
        r = await client.post(
            f"{node.url}/scrape", json={"url": f"{target_url}/", "timeout": timeout},
            headers=node.auth,
        )  # fmt: skip
        assert r.status_code == 400, timeout
        assert r.json()["error"]["code"] == "invalid_request"
        assert "timeout" in r.json()["error"]["message"]


async def test_a_client_that_hangs_up_frees_its_slot(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(tmp_path, "--allow-private") as n:
        stream = await raw(n)
        await stream.send_all(post(n, {"url": f"{target_url}/hang", "timeout": 60}))
        await wait_in_flight(client, n, 1)
        await stream.aclose()
        with trio.fail_after(3):
            while (await health(client, n))["in_flight"]:  # noqa: ASYNC110  # another process
                await trio.sleep(0.05)
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert 'crawlmesh_node_requests_total{code="client_closed"} 1.0' in metrics


async def test_no_redirect_is_built_from_the_clients_host(
    node: NodeProc, client: httpx.AsyncClient
) -> None:
    r = await client.get(f"{node.url}/scrape/", headers={"Host": "evil.example"})
    assert r.status_code == 404
    assert "location" not in r.headers
    assert r.json()["error"]["code"] == "not_found"


async def test_a_non_ascii_header_value_is_named_as_such(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    r = await client.post(
        f"{node.url}/scrape", json={"url": f"{target_url}/", "headers": {"X-A": "caf\u00e9"}},
        headers=node.auth,
    )  # fmt: skip
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "X-A" in message
    assert "url" not in message.lower()
