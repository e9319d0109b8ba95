"""The node service's endpoints, as a Starlette app.

``/scrape`` runs a request through a fixed list of steps, each of which may
refuse it with an error object: drain check, browser checks (``no_auth``
only), bearer token (failures on a budget of their own), the client's rate
and request cap (a client is its token; an address without auth), bounded
body read and validation, queue place (load shedding), fetch slot (a fair
share per client), the fetch itself through the SSRF-guarded pool (cancelled
if the client hangs up), then the answer's write. The places taken are held
until the answer is written, so a client that reads slowly (or never)
holds its slot, shows in ``/health``, and meets the write timeout.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import os
import re
import resource
import socket
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._exceptions import BlockedAddress, FetchError, FetchTimeout
from .._request import Request
from .._transport import (
    DirectTransport,
    ErrorBody,
    ErrorDetail,
    FetchOptions,
    H11Pool,
    Health,
    ScrapeRequest,
    ScrapeResult,
    target_failure,
)
from .._util._log import request_keys
from ._config import NodeConfig
from ._conns import Connections, address_key
from ._limits import Admission, AuthFailures, ClientLimits, Refusal
from ._metrics import NodeMetrics
from ._validate import Invalid, Validated, validate

__all__ = ["NodeService"]

_JSON = "application/json"
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ScrapeRequest)
_VERSION = "0.1.0"
# The scope key saying a request's body has been read to its end.
_BODY_READ = "crawlmesh.body_read"
# Bytes JSON writes as \u00XX (six bytes each); tab, LF and CR are two.
_ESCAPED = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _error(
    status: int, code: str, message: str, *, kind: str = "", retry_after: int = 0
) -> HttpResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="crawlmesh-node"'
    body = _encoder.encode(ErrorBody(ErrorDetail(code, message, kind)))
    return HttpResponse(body, status, headers, media_type=_JSON)


class _CpuSampler:
    """The process's CPU use in percent, over the last second or so."""

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._cpu = time.process_time()
        self.percent = 0.0

    def read(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        if now - self._at >= 1.0:
            self.percent = round(100.0 * (cpu - self._cpu) / (now - self._at), 1)
            self._at, self._cpu = now, cpu
        return self.percent


def _rss() -> int:
    """Resident memory in bytes (the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class NodeService:
    """One node: its limits, its fetcher, its metrics and its endpoints.

    Args:
        config: the node's settings.
        tokens: bearer tokens accepted for /scrape and /metrics (none:
            allowed only with ``config.no_auth``).
        own_process: the node has its process to itself. A node sharing
            its process (the demo's, with the crawl and the site) cannot
            tell its CPU from theirs: it reports none (``cpu_usage`` null)
            rather than theirs, and its status ignores CPU.

    Raises:
        ValueError: no tokens and ``no_auth`` not set.
    """

    def __init__(
        self, config: NodeConfig, tokens: Sequence[str] = (), *, own_process: bool = True
    ) -> None:
        if not tokens and not config.no_auth:
            raise ValueError("a node needs a token file, or no_auth to run without one")
        self.config = config
        self.name = config.name or socket.gethostname()
        self._tokens = [t.encode() for t in tokens]
        guard = config.guard()
        self._transport = DirectTransport(
            # Clients' cookies never mix: only sessions keep a jar.
            shared_cookies=False,
            transport=H11Pool(connect=guard.open_stream),
            max_sessions=config.max_sessions,
            session_idle=config.session_idle,
        )
        slots = config.client_slots
        self.admission = Admission(
            config.concurrency, config.max_queue, config.retry_after, client_slots=slots
        )
        self.clients = ClientLimits(
            config.client_rate, config.client_burst, slots + config.client_queue if slots else 0
        )
        self.auth_failures = AuthFailures(config.auth_failure_rate, config.auth_failure_burst)
        self.metrics = NodeMetrics(
            in_flight=lambda: self.admission.in_flight,
            queue_size=lambda: self.admission.queue_size,
            receiving=lambda: self.receiving,
            sessions=lambda: self._transport.session_count,
        )
        self.connections = Connections(
            config.max_connections,
            config.max_client_connections,
            config.header_timeout,
            config.write_timeout,
            on_refused=lambda reason: self.metrics.suspicious.labels(reason).inc(),
        )
        self.draining = False
        self.receiving = 0
        """Scrape requests whose body is still being read."""
        self._started = time.monotonic()
        self._cpu = _CpuSampler() if own_process else None
        self.log = structlog.get_logger("crawlmesh.node").bind(node=self.name)
        starlette = Starlette(
            routes=[
                Route("/scrape", _Asgi(self.scrape), methods=["GET", "POST"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_exception},
        )
        # A redirect to the slash-less path would be built from the
        # client's own Host header.
        starlette.router.redirect_slashes = False
        self.app: ASGIApp = _loopback_only(starlette) if config.no_auth else starlette

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- endpoints ----------------------------------------------------------

    async def health(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(_encoder.encode(self.health_record()), media_type=_JSON)

    def health_record(self) -> Health:
        queue = self.admission.queue_size
        cpu = self._cpu.read() if self._cpu is not None else None
        status: Any = "healthy"
        if self.draining:
            status = "draining"
        elif (
            self.config.max_queue and queue > self.config.degraded_queue * self.config.max_queue
        ) or (cpu is not None and cpu >= 90.0):
            status = "degraded"
        return Health(
            status=status,
            cpu_usage=cpu,
            memory=_rss(),
            queue_size=queue,
            in_flight=self.admission.in_flight,
            uptime=round(time.monotonic() - self._started, 3),
            version=_VERSION,
            name=self.name,
            region=self.config.region,
        )

    async def metrics_endpoint(self, request: HttpRequest) -> HttpResponse:
        try:
            self._authorize(request, _client_key(request))
        except Refusal as refusal:
            return _error(
                refusal.status, refusal.code, str(refusal), retry_after=refusal.retry_after
            )
        return HttpResponse(self.metrics.render(), media_type=_METRICS_TYPE)

    async def scrape(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = HttpRequest(scope, receive)
        address = _client_key(request)
        # What the request holds (its client's count, its queue place, its
        # slot), given back once the answer is written or the write failed.
        async with contextlib.AsyncExitStack() as held:
            try:
                response, code = await self._scrape(request, address, held)
            except Refusal as refusal:
                response = _error(
                    refusal.status, refusal.code, str(refusal), retry_after=refusal.retry_after
                )
                code = refusal.code
            except Exception as exc:  # a bug of ours: a JSON 500, logged and counted
                self.log.exception("scrape failed", client=address)
                code = "internal"
                response = _error(500, code, f"the node failed: {type(exc).__name__}")
            self.metrics.requests.labels(code).inc()
            if code != "ok":
                self.metrics.errors.labels(code).inc()
            self.metrics.duration.observe(time.perf_counter() - started)
            if request.method == "POST" and not scope.get(_BODY_READ):
                # Refused before its body was read: the connection cannot
                # carry another request, and the client must know it.
                response.headers["Connection"] = "close"
            await response(scope, receive, send)

    async def _http_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")

    # -- the /scrape steps --------------------------------------------------

    async def _scrape(
        self, request: HttpRequest, address: str, held: contextlib.AsyncExitStack
    ) -> tuple[HttpResponse, str]:
        if self.draining:
            raise Refusal(503, "draining", "the node is shutting down", self.config.retry_after)
        if self.config.no_auth and request.method == "POST":
            media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media != _JSON:
                # text/plain and forms are what a web page may send cross-site.
                raise Refusal(
                    415, "invalid_request", "POST /scrape needs Content-Type: application/json", 0
                )
        tenant = self._authorize(request, address)
        # Limits count per token; a node without auth can only go by address.
        client = f"token:{tenant}" if self._tokens else address
        self.clients.enter(client)
        held.callback(self.clients.leave, client)
        # The body is read (bounded in size and time) before the request
        # takes a queue place: a slow sender holds only its own client's.
        self.receiving += 1
        try:
            job = await self._read(request)
        finally:
            self.receiving -= 1
        self.admission.admit()
        held.callback(self.admission.leave)
        return await self._run(job, client, tenant, request.receive, held)

    def _authorize(self, request: HttpRequest, address: str) -> int:
        """The index of the token presented (0 without auth), or Refusal
        (401; 429 for an address over its failed-auth budget)."""
        if not self._tokens:
            return 0
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        given = presented.strip().encode()
        matched = -1
        if scheme.lower() == "bearer" and given:
            for index, token in enumerate(self._tokens):
                # Every token is compared, in constant time: the time taken
                # says nothing about which token (or how much of it) matched.
                if hmac.compare_digest(given, token):
                    matched = index
        if matched < 0:
            self.auth_failures.check(address)
            self.auth_failures.failed(address)
            reason = "missing token" if not given else "wrong token"
            self.metrics.suspicious.labels("auth").inc()
            self.log.warning("auth failed", client=address, reason=reason, path=request.url.path)
            raise Refusal(401, "unauthorized", f"{reason}: send Authorization: Bearer <token>", 0)
        return matched

    async def _read(self, request: HttpRequest) -> Validated:
        if request.method == "GET":
            query = request.query_params
            if "url" not in query:
                raise Refusal(400, "invalid_request", "GET /scrape needs ?url=", 0)
            try:
                scrape = ScrapeRequest(
                    url=query["url"],
                    timeout=float(query.get("timeout", 30.0)),
                    session_id=query.get("session_id") or None,
                    reset_session=query.get("reset_session", "") in ("1", "true"),
                )
            except ValueError as exc:
                raise Refusal(400, "invalid_request", f"bad query: {exc}", 0) from None
        else:
            scrape = _decode(await self._body(request))
        header_session = request.headers.get("x-session-id")
        if header_session and scrape.session_id is None:
            scrape = msgspec.structs.replace(scrape, session_id=header_session)
        try:
            return validate(scrape, self.config)
        except Invalid as exc:
            raise Refusal(400, "invalid_request", str(exc), 0) from None

    async def _body(self, request: HttpRequest) -> bytes:
        limit = self.config.max_request_size
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refusal(413, "invalid_request", f"request body over {limit} bytes", 0)
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(self.config.body_timeout) as scope:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, "invalid_request", f"request body over {limit} bytes", 0)
                chunks.append(chunk)
        if scope.cancelled_caught:
            raise Refusal(408, "invalid_request", "the request body came too slowly", 0)
        request.scope[_BODY_READ] = True
        return b"".join(chunks)

    async def _run(
        self,
        job: Validated,
        client: str,
        tenant: int,
        receive: Receive,
        held: contextlib.AsyncExitStack,
    ) -> tuple[HttpResponse, str]:
        # A queued request waits no longer than it would for its target.
        with trio.move_on_after(job.timeout) as waited:
            await self.admission.wait_slot(client)
        if waited.cancelled_caught:
            raise Refusal(
                503, "overloaded", f"no fetch slot within {job.timeout:g} s",
                self.config.retry_after,
            )  # fmt: skip
        held.callback(self.admission.release_slot, client)
        answer: tuple[HttpResponse, str] | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                # The body has been read: what comes next is the hang-up.
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            answer = await self._fetch(job, client, tenant)
            nursery.cancel_scope.cancel()
        if answer is None:
            # Nobody to answer: the fetch was stopped and its slot is free.
            raise Refusal(499, "client_closed", "the client hung up", 0)
        return answer

    async def _fetch(self, job: Validated, client: str, tenant: int) -> tuple[HttpResponse, str]:
        scrape = job.scrape
        session = scrape.session_id
        if session is not None:
            # Sessions are per token: another client's guess reaches nothing.
            session = f"{tenant}:{session}"
        if session is not None and scrape.reset_session:
            self._transport.forget_session(session)
        request = Request(
            scrape.url,
            method=scrape.method.upper(),
            # An intermediary says so (RFC 9110, 7.6.3).
            headers={**job.headers, "Via": f"1.1 {self.name}"},
            body=job.body,
            session=session,
        )
        options = FetchOptions(
            connect_timeout=self.config.connect_timeout,
            read_timeout=job.timeout,
            max_response_size=job.max_size,
            max_redirects=self.config.max_redirects,
        )
        deadline = job.timeout + self.config.connect_timeout
        try:
            with trio.fail_after(deadline):
                response = await self._transport.fetch(request, options)
        except trio.TooSlowError:
            error = FetchTimeout(
                f"no complete answer within {deadline:g} s", request=request, kind="total_timeout"
            )
            return self._failed(error, client)
        except FetchError as exc:
            return self._failed(exc, client)
        self.metrics.target_responses.labels(f"{response.status // 100}xx").inc()
        self.metrics.response_bytes.inc(len(response.body))
        body = response.body
        text = None
        if not _ESCAPED.search(body):
            # Text without control characters goes as UTF-8: at most twice
            # its size once JSON escapes quotes and backslashes (a control
            # character would take six bytes, so such bodies go as base64).
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        encoding = "utf-8" if text is not None else "base64"
        if text is None:
            text = base64.b64encode(body).decode("ascii")
        result = ScrapeResult(
            status=response.status,
            url=response.url,
            headers=response.headers.raw(),
            body=text,
            body_encoding=encoding,  # type: ignore[arg-type]
            elapsed=round(response.elapsed, 6),
            node=self.name,
            redirects=list(response.redirects),
        )
        return (
            HttpResponse(_encoder.encode(result), media_type=_JSON, headers={"X-Node": self.name}),
            "ok",
        )

    def _failed(self, exc: FetchError, client: str) -> tuple[HttpResponse, str]:
        if isinstance(exc, BlockedAddress):
            self.metrics.suspicious.labels("blocked_address").inc()
            url = exc.request.url if exc.request is not None else None
            self.log.warning(
                "blocked address",
                **request_keys(url, None, self.name, None),
                client=client,
                error=str(exc),
            )
        status, body = target_failure(exc)
        detail = body.error
        return _error(status, detail.code, detail.message, kind=detail.kind), detail.code


def _client_key(request: HttpRequest) -> str:
    """The client's address as per-address limits count it (an IPv6 /64)."""
    return address_key(request.client.host if request.client else "unknown")


class _Asgi:
    """An ASGI callable Starlette routes to as is (not as request/response):
    ``/scrape`` writes its answer while it still holds its places."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _loopback_host(host: str) -> bool:
    """Whether a Host header names loopback (``localhost``, 127/8, ``[::1]``)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _loopback_only(app: ASGIApp) -> ASGIApp:
    """``app`` refusing what a web page could make a browser send to a node
    without auth: a Host that is not loopback (DNS rebinding would let the
    page read the answer) and cross-site requests (``Origin``,
    ``Sec-Fetch-Site``)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1")
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        why = ""
        if not _loopback_host(host):
            why = f"Host {host!r} is not loopback: a node without auth answers only to localhost"
        elif b"origin" in headers or site not in ("", "none", "same-origin"):
            why = "a cross-site (browser) request: a node without auth refuses them"
        if not why:
            await app(scope, receive, send)
            return
        await _error(403, "forbidden", why)(scope, receive, send)

    return guarded


def _decode(data: bytes) -> ScrapeRequest:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise Refusal(400, "invalid_request", f"invalid scrape request: {exc}", 0) from None
