"""Helpers for the node service tests: real ``crawlmesh node`` processes on
loopback, and an in-process target site for them to fetch."""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import trio

from crawlmesh import SiteRequest, SiteResponse

HTML = [("Content-Type", "text/html; charset=utf-8")]


@dataclass
class NodeProc:
    """A running ``crawlmesh node`` process."""

    url: str
    token: str
    proc: subprocess.Popen[str]
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def rss(self) -> int:
        """Resident memory in bytes, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


def write_token(
    directory: Path, token: str | None = None, extra: Sequence[str] = ()
) -> tuple[Path, str]:
    token = token or secrets.token_urlsafe(24)
    path = directory / f"token-{secrets.token_hex(4)}"
    lines = "".join(f"{t}\n" for t in (token, *extra))
    path.write_text(f"# the node's bearer tokens\n{lines}")
    path.chmod(0o600)
    return path, token


@contextmanager
def node_process(
    directory: Path,
    *args: str,
    name: str = "n1",
    token: str | None = None,
    extra_tokens: Sequence[str] = (),
    auth: bool = True,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[NodeProc]:
    """Start ``crawlmesh node`` on a free port with ``token`` (default: a
    fresh one) and ``extra_tokens`` (or ``--no-auth`` if not ``auth``);
    stop it after."""
    token_file, token = write_token(directory, token, extra_tokens)
    log = directory / f"{name}-{secrets.token_hex(4)}.log"
    access = ["--token-file", str(token_file)] if auth else ["--no-auth"]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "crawlmesh", "node", "--port", "0", "--name", name,
                *access, "--log-level", "info", *args,
            ],
            preexec_fn=preexec_fn,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"node printed nothing within 30 s: {log.read_text()}"
        line = proc.stdout.readline().strip()
        assert " listening on http://" in line, f"{line!r}: {log.read_text()}"
        yield NodeProc(line.rsplit(" ", 1)[1], token, proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


class TargetSite:
    """What the nodes fetch: pages, slow and hanging answers, redirects,
    header and cookie echoes, big and binary bodies."""

    def __init__(self) -> None:
        self.hits = 0

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        self.hits += 1
        parts = urlsplit(request.target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/slow":
            await trio.sleep(float(query.get("s", "1")))
            return SiteResponse(200, b"<p>slow</p>", HTML)
        if path == "/hang":
            await trio.sleep_forever()
        if path == "/trickle":  # a byte every 0.2 s: no read ever times out
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                await stream.send_all(b"x")
                await trio.sleep(0.2)
        if path == "/many-cookies":
            start = int(query["from"])
            cookies = [("Set-Cookie", f"c{i}=v; Path=/") for i in range(start, start + 200)]
            return SiteResponse(200, b"ok", cookies)
        if path == "/redirect":
            return SiteResponse(302, b"", [("Location", query["to"])])
        if path == "/echo":
            return SiteResponse(
                200, json.dumps(request.headers).encode(), [("Content-Type", "application/json")]
            )
        if path == "/set-cookie":
            return SiteResponse(200, b"set", [("Set-Cookie", f"v={query['v']}; Path=/")])
        if path == "/cookie":
            return SiteResponse(200, request.headers.get("cookie", "").encode())
        if path == "/big":
            fill = b"\x01" if query.get("fill") else b"x"
            return SiteResponse(200, fill * int(query["n"]))
        if path == "/bin":
            return SiteResponse(200, bytes(range(256)), [("Content-Type", "image/png")])
        if path == "/status":
            return SiteResponse(int(query["code"]), b"status", HTML)
        if path.startswith("/p/"):
            n = int(path[3:])
            links = "".join(f"<a href='/p/{c}'>p</a>" for c in (2 * n + 1, 2 * n + 2) if c < 60)
            return SiteResponse(200, f"<h1>Item {n}</h1>{links}".encode(), HTML)
        return SiteResponse(200, b"<html><body><p>hello</p></body></html>", HTML)


async def wait_in_flight(client: httpx.AsyncClient, node: NodeProc, count: int) -> None:
    """Return once the node reports ``count`` fetches in flight (within 10 s)."""
    with trio.fail_after(10):
        # Another process's state: nothing to wait on but its /health.
        while (await client.get(f"{node.url}/health")).json()["in_flight"] < count:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def wait_health(client: httpx.AsyncClient, node: NodeProc, **expected: object) -> Any:
    """The node's /health once every field in ``expected`` has its value (within 10 s)."""
    with trio.fail_after(10):
        while True:  # another process's state: nothing to wait on but its /health
            health = (await client.get(f"{node.url}/health")).json()
            if all(health.get(key) == value for key, value in expected.items()):
                return health
            await trio.sleep(0.05)


async def wait_metric(client: httpx.AsyncClient, node: NodeProc, sample: str, value: float) -> None:
    """Return once the node's /metrics has ``sample`` (a name with its labels,
    as exposed: ``crawlmesh_node_requests_total{code="ok"}``) at ``value``
    (within 10 s)."""
    with trio.fail_after(10):
        while True:  # another process's state: nothing to wait on but its /metrics
            text = (await client.get(f"{node.url}/metrics", headers=node.auth)).text
            for line in text.splitlines():
                name, _, found = line.rpartition(" ")
                if name == sample and float(found) == value:
                    return
            await trio.sleep(0.05)


async def wait_exit(node: NodeProc, within: float) -> int:
    """The node process's exit status, once it exits (within ``within`` s)."""
    return await trio.to_thread.run_sync(node.proc.wait, within)
