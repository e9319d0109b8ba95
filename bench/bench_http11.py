"""CPU cost of a response head dripped a byte at a time, and of the pool's
idle-connection check.

    python bench/bench_http11.py [--head-kib 64] [--idle-checks 200000]

* offline   the parser alone: ``parse_head`` called as the pool's head loop
            calls it, with one byte more each time (no socket, no event loop)
* loopback  one request through ``H11Pool.send`` to a server process on
            127.0.0.1 that writes the head one byte per ``send`` (TCP_NODELAY,
            a short pause between bytes), so nearly every read returns one
            byte; CPU is the event loop thread's (``time.thread_time``), the
            server runs in a process of its own
* reference the same request with the head sent in one write (the fixed
            cost of a request in this harness, included in the figure above)
* idle      what the check made before an idle connection is reused costs,
            per call (a connection with nothing to read)

A head of ``--head-kib`` KiB (just under the pool's 64 KiB limit by default)
of ``X-Pad-NNNNN: ...`` lines. Prints seconds of CPU; asserts nothing.
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import socket
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import per_call_us
from crawlmesh._transport import H11Pool, _conn
from crawlmesh._transport._conn import Conn
from crawlmesh._transport._http11 import parse_head


def make_head(size: int) -> bytes:
    lines = [b"HTTP/1.1 200 OK\r\n"]
    total = len(lines[0]) + len(b"Content-Length: 2\r\n\r\n")
    n = 0
    while True:
        line = b"X-Pad-%05d: %s\r\n" % (n, b"v" * 40)
        if total + len(line) > size:
            break
        lines.append(line)
        total += len(line)
        n += 1
    lines.append(b"Content-Length: 2\r\n\r\n")
    return b"".join(lines)


def offline(head: bytes) -> tuple[float, int]:
    """The parser as the pool's head loop calls it, one byte more each time."""
    # Before the parser learnt to resume its search it had no ``scanned``.
    resumes = "scanned" in inspect.signature(parse_head).parameters
    buf = bytearray()
    scanned = calls = 0
    start = time.thread_time()
    for i in range(len(head)):
        buf += head[i : i + 1]
        calls += 1
        if resumes:
            parsed = parse_head(buf, head_request=False, scanned=scanned)
        else:
            parsed = parse_head(buf, head_request=False)
        if parsed is not None:
            break
        scanned = len(buf)
    cpu = time.thread_time() - start
    assert parsed is not None
    assert parsed[0].status == 200
    return cpu, calls


def _serve_drip(listener: socket.socket, head: bytes, pause: float) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        if pause < 0:  # the reference: the whole head in one write
            conn.sendall(head)
        for i in range(len(head) if pause >= 0 else 0):
            conn.sendall(head[i : i + 1])
            if pause:
                time.sleep(pause)
        conn.sendall(b"ok")
        conn.recv(1)  # until the client closes


def loopback(head: bytes, pause: float) -> tuple[float, float, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    # A process of its own: the server's GIL is not the event loop's.
    server = multiprocessing.get_context("fork").Process(
        target=_serve_drip, args=(listener, head, pause), daemon=True
    )
    server.start()
    reads = 0
    real_read_ready = _conn.read_ready

    def counting(fd: int) -> bytes | None:
        nonlocal reads
        data = real_read_ready(fd)
        if data:
            reads += 1
        return data

    async def run() -> tuple[float, float]:
        pool = H11Pool()
        try:
            start, wall = time.thread_time(), time.perf_counter()
            parsed, body = await pool.send(
                "GET",
                b"http",
                "127.0.0.1",
                port,
                b"127.0.0.1:%d" % port,
                b"/",
                [(b"Host", b"127.0.0.1:%d" % port)],
                b"",
                connect_timeout=10,
                read_timeout=60,
                write_timeout=10,
            )
            cpu, wall = time.thread_time() - start, time.perf_counter() - wall
            assert parsed.status == 200, parsed.status
            data = b"".join([chunk async for chunk in body])
            assert data == b"ok", data
            await body.aclose()
            return cpu, wall
        finally:
            await pool.aclose()

    _conn.read_ready = counting
    try:
        cpu, wall = trio.run(run)
    finally:
        _conn.read_ready = real_read_ready
    server.join(10)
    listener.close()
    return cpu, wall, reads


def idle_check_us() -> float | None:
    check = getattr(_conn, "readable_while_idle", None)
    if check is None:
        return None
    a, b = socket.socketpair()
    a.setblocking(False)
    conn = Conn.__new__(Conn)
    conn.fd = a.fileno()
    conn.buf = bytearray()

    def calls(k: int) -> None:
        for _ in range(k):
            check(conn)

    try:
        return per_call_us(calls)
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--head-kib", type=float, default=64, help="head size in KiB (64)")
    parser.add_argument(
        "--pause", type=float, default=0.00005, help="server's pause between bytes, s (5e-05)"
    )
    parser.add_argument("--skip-offline", action="store_true", help="only the loopback run")
    parser.add_argument(
        "--no-pause",
        action="store_true",
        help="the pool without its pause after many small reads (one wake-up per byte)",
    )
    args = parser.parse_args()
    if args.no_pause and hasattr(_conn, "_DRIP_READS"):
        _conn._DRIP_READS = 1 << 62
    head = make_head(int(args.head_kib * 1024) - 1)
    print(f"head: {len(head)} bytes")
    if not args.skip_offline:
        cpu, reads = offline(head)
        print(f"offline : {cpu:8.3f} s CPU, {reads} parse_head calls, one byte more each")
    cpu, wall, reads = loopback(head, -1)
    print(f"reference: {cpu:8.3f} s CPU, the same request with the head in one write")
    cpu, wall, reads = loopback(head, args.pause)
    print(
        f"loopback: {cpu:8.3f} s CPU (event loop thread), {wall:.2f} s wall, "
        f"{reads} reads, {len(head) / max(reads, 1):.1f} bytes per read"
    )
    per_call = idle_check_us()
    if per_call is not None:
        print(f"idle check before reuse: {per_call:.2f} us per call")


if __name__ == "__main__":
    main()
