"""A ``crawlmesh node`` under hostile clients, on loopback: memory held by
clients that never read, and the node's service under a connection flood.

Run from the repository root::

    .venv/bin/python bench/bench_node_hostile.py [--readers 60] [--flood 1100]
    # the same against another checkout's code, for a before/after:
    .venv/bin/python bench/bench_node_hostile.py --src /path/to/other/src

* non-reading clients: a node with ``--concurrency 8 --max-queue 16``,
  ``max_response_size`` 32 MiB and no per-client share (the worst case);
  ``--readers`` raw connections, 8 every 0.5 s, each ask for a 20 MiB page
  and never read (a 4 KiB receive buffer). Prints the node's
  peak RSS over ``--hold`` seconds, what ``/health`` says meanwhile, and how
  many of the clients were refused (503) rather than given an answer. The
  README's bound is (concurrency + max_queue) answers: 24 x ~20 MiB.
* connection flood: a node started with an open-file limit of 1024 (soft and
  hard, as ``ulimit -n 1024``); ``--flood`` connections each send half a
  request head and stall, from one address and then spread over five. A
  well-behaved client on another address asks for ``/health`` and a small
  page every 0.25 s meanwhile: its successes, failures and worst latency,
  and the tracebacks in the node's log, are printed.

Bounded: every connection is closed and the node stopped at the end of each
part; nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from crawlmesh import SiteRequest, SiteResponse, open_site_server

MiB = 1024 * 1024
PAGE = b"x" * (20 * MiB)


class Node:
    def __init__(
        self,
        directory: Path,
        args: list[str],
        src: str | None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.token = secrets.token_urlsafe(24)
        token_file = directory / f"token-{secrets.token_hex(3)}"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        self.log = directory / f"node-{secrets.token_hex(3)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if src:
            env["PYTHONPATH"] = src
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "crawlmesh", "node", "--port", "0", "--name", "hostile",
                    "--token-file", str(token_file), "--allow-private", *args,
                ],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env, preexec_fn=preexec,
            )  # fmt: skip
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, self.log.read_text()
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.addr = (host, int(port))

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


async def target(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
    if request.target.startswith("/big"):
        return SiteResponse(200, PAGE)
    return SiteResponse(200, b"<p>small</p>")


async def connect(addr: tuple[str, int], source: str, rcvbuf: int = 0) -> trio.SocketStream:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.bind((source, 0))
    await sock.connect(addr)
    return trio.SocketStream(sock)


async def non_readers(args: argparse.Namespace, directory: Path) -> None:
    config = directory / "readers.toml"
    # No per-client share (client_concurrency = 0): the worst case, as many
    # clients with tokens of their own would be.
    config.write_text(
        f"max_response_size = {32 * MiB}\nclient_rate = 0.0\nclient_concurrency = 0\n"
    )
    node = Node(
        directory, ["--concurrency", "8", "--max-queue", "16", "--config", str(config)], args.src
    )
    streams: list[trio.SocketStream] = []
    try:
        async with open_site_server(target) as base, httpx.AsyncClient(timeout=10) as client:
            before = node.rss()
            body = f'{{"url": "{base}/big", "timeout": 60, "max_size": {32 * MiB}}}'.encode()
            head = (
                f"POST /scrape HTTP/1.1\r\nHost: {node.url[7:]}\r\n"
                f"Authorization: Bearer {node.token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            peak, seen = 0, []
            deadline = time.monotonic() + args.hold
            while time.monotonic() < deadline:
                # They come in waves: 8 every 0.5 s.
                for i in range(len(streams), min(args.readers, len(streams) + 8)):
                    # Five source addresses: per-address caps are not measured here.
                    stream = await connect(node.addr, f"127.0.0.{2 + i % 5}", rcvbuf=4096)
                    await stream.send_all(head + body)
                    streams.append(stream)
                peak = max(peak, node.rss())
                health = (await client.get(f"{node.url}/health")).json()
                seen.append((health["status"], health["in_flight"], health["queue_size"]))
                await trio.sleep(0.5)
            refused = 0
            for stream in streams:
                with trio.move_on_after(0.2):
                    if (await stream.receive_some(64)).startswith(b"HTTP/1.1 503"):
                        refused += 1
        print(f"non-reading clients: {args.readers} asking for 20 MiB answers, never reading")
        rss = f"{before / MiB:.0f} MiB before, peak {peak / MiB:.0f} MiB"
        print(f"  node RSS: {rss} over {args.hold:g} s")
        print(f"  refused with 503 at once: {refused}; the rest hold an answer")
        last = seen[-1]
        print(f"  /health at the end: status {last[0]}, in_flight {last[1]}, queue {last[2]}")
    finally:
        for stream in streams:
            await stream.aclose()
        node.stop()


def _ulimit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


async def flood(args: argparse.Namespace, directory: Path, sources: list[str]) -> None:
    node = Node(directory, ["--log-level", "info"], args.src, preexec=_ulimit_1024)
    streams: list[trio.SocketStream] = []
    ok = failed = 0
    worst = 0.0
    try:
        async with open_site_server(target) as base:
            opened = refused_at_connect = 0
            for i in range(args.flood):
                try:
                    stream = await connect(node.addr, sources[i % len(sources)])
                    await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    refused_at_connect += 1
                    continue
                streams.append(stream)
                opened += 1
            started = time.monotonic()
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
            async with httpx.AsyncClient(timeout=5, transport=transport) as client:
                while time.monotonic() - started < args.flood_seconds:
                    t0 = time.monotonic()
                    try:
                        h = await client.get(f"{node.url}/health")
                        s = await client.post(
                            f"{node.url}/scrape", json={"url": f"{base}/small"},
                            headers={"Authorization": f"Bearer {node.token}"},
                        )  # fmt: skip
                        if h.status_code == 200 and s.status_code == 200:
                            ok += 1
                        else:
                            failed += 1
                    except httpx.HTTPError:
                        failed += 1
                    worst = max(worst, time.monotonic() - t0)
                    await trio.sleep(0.25)
        log = node.log.read_text()
        print(
            f"connection flood: {args.flood} stalled heads from {len(sources)} address(es), "
            f"node under ulimit -n 1024 ({opened} connected, {refused_at_connect} failed to)"
        )
        print(
            f"  a client on 127.0.0.9 for {args.flood_seconds:g} s: {ok} ok, {failed} failed, "
            f"worst {worst:.2f} s"
        )
        print(
            f"  node log: {log.count('Traceback')} tracebacks, "
            f"{log.count('EMFILE') + log.count('Too many open files')} mentions of EMFILE"
        )
    finally:
        for stream in streams:
            await stream.aclose()
        node.stop()


async def main(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # this process's fds
    print(f"code: {args.src or 'this checkout'}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if args.readers:
            await non_readers(args, directory)
        if args.flood:
            await flood(args, directory, ["127.0.0.1"])
            await flood(args, directory, [f"127.0.0.{i}" for i in range(1, 6)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=60)
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--flood", type=int, default=1100)
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--src", help="run the node from this src/ directory (PYTHONPATH)")
    trio.run(main, parser.parse_args())
