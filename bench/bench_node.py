"""The node service on loopback: requests/s of one node, and the latency a
node hop adds over a direct fetch.

Run from the repository root (needs nginx, as bench/run.py)::

    .venv/bin/python bench/bench_node.py [--requests 4000] [--concurrency 32]

nginx serves one 20 KB HTML page. A ``crawlmesh node`` process (token auth,
SSRF guard with ``--allow-private``, client limits off) fetches it for a
client that speaks the node protocol with crawlmesh's own NodeTransport,
as a crawl does. The direct figures use DirectTransport from the same client.

* latency: requests one at a time, after a warm-up; median and p95 in ms.
* throughput: ``--requests`` requests over ``--concurrency`` client tasks;
  requests/s, and the node's and the client's CPU per request.

Client, node and nginx share the machine's cores: on 2 cores the node's
requests/s is bounded by the CPU left to it, which the figures show.
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio
from run import NGINX_BIN, WORK, Nginx  # bench/ is on sys.path when run as a script

from crawlmesh import DirectTransport, FetchOptions, NodeTransport, Request, Transport

OPTS = FetchOptions(read_timeout=30.0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(directory: Path, concurrency: int) -> tuple[subprocess.Popen[str], str, str]:
    token = secrets.token_urlsafe(24)
    token_file = directory / "node-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "crawlmesh", "node", "--port", "0", "--name", "bench",
            "--token-file", str(token_file), "--allow-private", "--client-rate", "0",
            "--client-concurrency", "0", "--concurrency", str(max(64, concurrency)),
            "--max-queue", "1024", "--log-level", "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        raise RuntimeError("the node did not start within 30 s")
    url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
    return proc, url, token


async def latencies(transport: Transport, url: str, count: int) -> list[float]:
    for _ in range(50):  # warm-up: connections, caches
        await transport.fetch(Request(url), OPTS)
    out = []
    for _ in range(count):
        started = time.perf_counter()
        response = await transport.fetch(Request(url), OPTS)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status == 200
    return out


async def throughput(transport: Transport, url: str, total: int, workers: int) -> float:
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            response = await transport.fetch(Request(url), OPTS)
            assert response.status == 200

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(worker)
    return total / (time.perf_counter() - started)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


async def measure(
    page: str, node_url: str, token: str, node_pid: int, args: argparse.Namespace
) -> None:
    direct = DirectTransport()
    hop = NodeTransport(node_url, token=token)
    try:
        d = await latencies(direct, page, args.latency_requests)
        n = await latencies(hop, page, args.latency_requests)
        print(f"latency, one request at a time ({args.latency_requests} each), ms:")
        print(f"  {'':<12} {'median':>8} {'p95':>8}")
        print(f"  {'direct':<12} {statistics.median(d):>8.2f} {p95(d):>8.2f}")
        print(f"  {'via node':<12} {statistics.median(n):>8.2f} {p95(n):>8.2f}")
        added = statistics.median(n) - statistics.median(d)
        print(f"  a node hop adds {added:.2f} ms at the median, {p95(n) - p95(d):.2f} ms at p95")

        client_cpu = time.process_time()
        direct_rps = await throughput(direct, page, args.requests, args.concurrency)
        direct_client_us = (time.process_time() - client_cpu) / args.requests * 1e6
        client_cpu, node_cpu = time.process_time(), cpu_seconds(node_pid)
        node_rps = await throughput(hop, page, args.requests, args.concurrency)
        client_us = (time.process_time() - client_cpu) / args.requests * 1e6
        node_us = (cpu_seconds(node_pid) - node_cpu) / args.requests * 1e6
        print(f"throughput, {args.requests} requests over {args.concurrency} client tasks:")
        print(
            f"  direct    {direct_rps:>8.0f} requests/s   "
            f"client CPU {direct_client_us:>6.0f} µs/req"
        )
        print(
            f"  via node  {node_rps:>8.0f} requests/s   client CPU {client_us:>6.0f} µs/req, "
            f"node CPU {node_us:>6.0f} µs/req"
        )
        print(f"  one node's ceiling on one core: ~{1e6 / node_us:.0f} requests/s")
    finally:
        await direct.aclose()
        await hop.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=500)
    args = parser.parse_args()
    if not Path(NGINX_BIN).exists():
        sys.exit(f"nginx not found at {NGINX_BIN}: apt-get install nginx-light")
    site = WORK / "node-site"
    site.mkdir(parents=True, exist_ok=True)
    links = "".join(f"<li><a href='/p/{i}'>page {i}</a></li>" for i in range(400))
    (site / "index.html").write_text(f"<html><body><ul>{links}</ul></body></html>")
    nginx = Nginx(site)
    port = nginx.start()
    node, node_url, token = start_node(WORK, args.concurrency)
    try:
        page = f"http://127.0.0.1:{port}/index.html"
        size = len((site / "index.html").read_bytes())
        print(f"page {size / 1024:.1f} KB from nginx; node {node_url}; {os.cpu_count()} CPUs")
        trio.run(measure, page, node_url, token, node.pid, args)
    finally:
        node.terminate()
        node.wait(30)
        nginx.stop()


if __name__ == "__main__":
    main()
