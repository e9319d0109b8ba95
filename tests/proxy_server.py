"""A small HTTP forward proxy for tests, on Trio and h11.

``python tests/proxy_server.py [--auth user:pass] [--fail-rate 0.0]`` prints
its base URL (``http://127.0.0.1:PORT``) as the first line on stdout, then
serves until killed.

* Absolute-form requests (``GET http://127.0.0.1:8000/path``) are forwarded,
  one upstream connection each, and the answer relayed with ``Via`` and a
  ``Proxy-Status: ...; received-status=N`` (no ``error``: not the proxy's).
* ``CONNECT host:port`` opens a tunnel and relays bytes both ways.
* Only loopback targets (127.0.0.0/8, ::1, as IP literals) are served; any
  other gets a 403, so a test can never reach the internet through it.
* ``--auth user:pass``: a request without those Basic credentials gets 407.
* ``--fail-rate R``: that share of proxied requests gets a 503 from the proxy
  itself.
* ``GET /__proxy_stats`` (origin form, no credentials needed) returns JSON
  counters: what was forwarded and tunnelled, from which client port, and
  what was refused and why.

The proxy's own error answers carry ``Proxy-Status: <name>; error=<type>``
(RFC 9209), as well-behaved proxies do.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import random
import sys
from collections import Counter
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import h11
import trio

NAME = "crawlmesh-test-proxy"
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_TIMEOUT = 30.0  # every upstream step, and every read from a client
_READ = 65536


class Proxy:
    """The proxy's configuration and counters."""

    def __init__(self, auth: str | None, fail_rate: float, seed: int | None = None) -> None:
        self.expected_auth = (
            b"Basic " + base64.b64encode(auth.encode()) if auth is not None else None
        )
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.connections = 0
        self.forwarded: list[dict[str, Any]] = []
        self.tunnels: list[dict[str, Any]] = []
        self.refused: Counter[str] = Counter()

    def stats(self) -> bytes:
        return json.dumps(
            {
                "connections": self.connections,
                "forwarded": self.forwarded,
                "tunnels": self.tunnels,
                "refused": dict(self.refused),
            }
        ).encode()

    async def serve(self, stream: trio.SocketStream) -> None:
        """One client connection; never lets an exception kill the server."""
        self.connections += 1
        try:
            await self._serve(stream, stream.socket.getpeername()[1])
        except (
            h11.ProtocolError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.TooSlowError,  # an idle or stalled client
            OSError,
        ):
            pass
        except Exception as exc:  # a bug here must not take the proxy down
            print(f"proxy: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.SocketStream, client_port: int) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            request, body = await _read_message(conn, stream, h11.Request)
            if request is None:
                return
            keep = await self._answer(conn, stream, request, body, client_port)
            if not keep or conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _answer(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes,
        client_port: int,
    ) -> bool:
        """Answer one request; False when the connection is done with."""
        method, target = request.method, request.target.decode("latin-1")
        if method == b"GET" and target == "/__proxy_stats":
            await _send(conn, stream, 200, self.stats(), [(b"Content-Type", b"application/json")])
            return True
        if self.expected_auth is not None:
            given = dict(request.headers).get(b"proxy-authorization")
            if given != self.expected_auth:
                self.refused["auth"] += 1
                await _refuse(
                    conn,
                    stream,
                    407,
                    "http_request_denied",
                    [(b"Proxy-Authenticate", f'Basic realm="{NAME}"'.encode())],
                )
                return method != b"CONNECT"
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.refused["fail"] += 1
            await _refuse(conn, stream, 503, "proxy_internal_error")
            return method != b"CONNECT"
        if method == b"CONNECT":
            await self._tunnel(conn, stream, target, client_port)
            return False
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            self.refused["not_absolute"] += 1
            await _refuse(conn, stream, 400, "http_request_error")
            return True
        if not _loopback(parts.hostname):
            self.refused["forbidden"] += 1
            await _refuse(conn, stream, 403, "destination_ip_prohibited")
            return True
        self.forwarded.append(
            {
                "method": method.decode(),
                "url": target,
                "client_port": client_port,
                "auth": dict(request.headers).get(b"proxy-authorization") is not None,
            }
        )
        await self._forward(conn, stream, request, body, parts.hostname, parts.port or 80)
        return True

    async def _forward(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes,
        host: str,
        port: int,
    ) -> None:
        parts = urlsplit(request.target.decode("latin-1"))
        origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [(k, v) for k, v in request.headers if k not in _HOP_BY_HOP]
        headers.append((b"Connection", b"close"))
        upstream = h11.Connection(h11.CLIENT)
        try:
            with trio.fail_after(_TIMEOUT):
                target = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError):
            self.refused["upstream"] += 1
            await _refuse(conn, stream, 502, "connection_refused")
            return
        async with target:
            try:
                with trio.fail_after(_TIMEOUT):
                    out = upstream.send(
                        h11.Request(method=request.method, target=origin_form, headers=headers)
                    )
                    if body:
                        out += upstream.send(h11.Data(data=body)) or b""
                    out += upstream.send(h11.EndOfMessage()) or b""
                    await target.send_all(out or b"")
                    response, answer = await _read_message(upstream, target, h11.Response)
            except (trio.TooSlowError, h11.ProtocolError, trio.BrokenResourceError, OSError):
                response = None
            if response is None:
                self.refused["upstream"] += 1
                await _refuse(conn, stream, 502, "http_response_incomplete")
                return
        relayed = [(k, v) for k, v in response.headers if k not in _HOP_BY_HOP]
        if request.method != b"HEAD":
            relayed = [(k, v) for k, v in relayed if k != b"content-length"]
        relayed += [
            (b"Via", f"1.1 {NAME}".encode()),
            (b"Proxy-Status", f"{NAME}; received-status={response.status_code}".encode()),
        ]
        await _send(conn, stream, response.status_code, answer, relayed, head=request.method)

    async def _tunnel(
        self, conn: h11.Connection, stream: trio.SocketStream, authority: str, client_port: int
    ) -> None:
        host, _, port = authority.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not _loopback(host):
            self.refused["forbidden"] += 1
            await _refuse(conn, stream, 403, "destination_ip_prohibited")
            return
        try:
            with trio.fail_after(_TIMEOUT):
                target = await trio.open_tcp_stream(host, int(port))
        except (OSError, trio.TooSlowError):
            self.refused["upstream"] += 1
            await _refuse(conn, stream, 502, "connection_refused")
            return
        self.tunnels.append({"authority": authority, "client_port": client_port})
        async with target:
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[])) or b"")
            early = conn.trailing_data[0]
            if early:
                await target.send_all(early)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, stream, target, nursery.cancel_scope)
                nursery.start_soon(_pipe, target, stream, nursery.cancel_scope)


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(_READ):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        done.cancel()  # either side ending ends the tunnel


async def _read_message(
    conn: h11.Connection, stream: trio.abc.Stream, kind: type[Any]
) -> tuple[Any, bytes]:
    """The next request or response and its whole body; (None, b"") at EOF."""
    head = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with trio.fail_after(_TIMEOUT):
                conn.receive_data(bytes(await stream.receive_some(_READ)))
        elif isinstance(event, kind):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return head, bytes(body)
        elif event is h11.PAUSED:
            return head, bytes(body)  # a CONNECT: the head is all there is
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def _send(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    head: bytes = b"GET",
) -> None:
    headers = list(headers)
    if head != b"HEAD" and status not in (204, 304) and status >= 200:
        headers.append((b"Content-Length", str(len(body)).encode()))
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    if body and head != b"HEAD":
        out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def _refuse(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    status: int,
    error: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"Proxy-Status", f"{NAME}; error={error}".encode()), *(extra or [])]
    await _send(conn, stream, status, f"{NAME}: {error}\n".encode(), headers)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: never resolved, so never a way out


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth", help="required credentials, user:pass")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    proxy = Proxy(args.auth, args.fail_rate, args.seed)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, proxy.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        print(f"http://127.0.0.1:{port}", flush=True)


if __name__ == "__main__":
    trio.run(main)
