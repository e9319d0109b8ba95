"""The ``node`` transport: fetch through a ``crawlmesh node`` service."""

from __future__ import annotations

import base64
import time

import httpx
import msgspec
import trio

from .._exceptions import FetchError
from .._request import Request
from .._response import Headers, Response
from .._shaping import parse_retry_after
from ._base import FetchOptions
from ._direct import translate_httpx_error
from ._nodeproto import TARGET_ERRORS, ErrorBody, Health, ScrapeRequest, ScrapeResult
from ._pool import H11Pool

__all__ = ["NodeFault", "NodePushback", "NodeTransport", "is_node_pushback"]

_result_decoder = msgspec.json.Decoder(ScrapeResult)
# Room in a node's answer beyond the body: headers, URLs, redirects.
_ANSWER_SLACK = 1024 * 1024
_error_decoder = msgspec.json.Decoder(ErrorBody)
_health_decoder = msgspec.json.Decoder(Health)
_encoder = msgspec.json.Encoder()
# A node's own "not now" (rate_limited, overloaded, draining), as opposed to
# its other faults (unauthorized, internal, ...).
_PUSHBACK_STATUSES = frozenset({429, 503})


class NodeFault(FetchError):
    """The node itself failed (unreachable, overloaded, draining, bad answer).

    Counted against the node, and the request is retried on another one.
    """

    kind = "node_error"
    node_fault = True


class NodePushback(NodeFault):
    """The node refused the request of its own accord, before fetching it
    (its 429 ``rate_limited`` or 503 ``overloaded``/``draining``): the node
    asks to be left alone for ``retry_after`` seconds (its Retry-After).

    Not the target's failure: the balancer sends the node nothing until
    then, and the request waits for a node instead of using up an attempt.
    """

    retry_after: float | None = None
    """Seconds the node asked for (None: it gave no usable Retry-After)."""

    def __init__(
        self,
        message: str,
        *,
        request: Request | None = None,
        kind: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request=request, kind=kind)
        self.retry_after = retry_after


def is_node_pushback(exc: BaseException) -> bool:
    """True for a node's own refusal (:class:`NodePushback`)."""
    return isinstance(exc, NodePushback)


class NodeTransport:
    """Sends each request to a node's ``POST /scrape``.

    Args:
        base_url: the node service, e.g. ``http://10.0.0.5:8700``.
        token: a bearer token for the service, if it asks for one.
    """

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._pool = H11Pool()
        # Sessions whose next request tells the node to drop their cookie jar.
        self._reset: set[str] = set()

    def forget_session(self, session: str) -> None:
        """Have the node start ``session`` afresh on its next request."""
        self._reset.add(session)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def _call(self, method: str, path: str, body: bytes, budget: float) -> httpx.Response:
        extensions = {"timeout": {"connect": budget, "read": budget, "write": budget}}
        hreq = httpx.Request(
            method, self._base + path, headers=self._headers, content=body or None,
            extensions=extensions,
        )  # fmt: skip
        return await self._pool.handle_async_request(hreq)

    async def _read(
        self, resp: httpx.Response, limit: int, request: Request | None = None
    ) -> bytes:
        chunks = []
        size = 0
        async for chunk in resp.stream:  # type: ignore[union-attr]
            size += len(chunk)
            if size > limit:
                raise NodeFault(f"the node's answer is over {limit} bytes", request=request)
            chunks.append(chunk)
        return b"".join(chunks)

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        """Fetch ``request`` through the node; see :class:`Transport`."""
        headers = dict(options.default_headers)
        if options.user_agent:
            headers["User-Agent"] = options.user_agent
        headers.update(request.headers or {})
        payload = ScrapeRequest(
            url=request.url,
            method=request.method,
            headers=headers,
            body=base64.b64encode(request.body).decode() if request.body else "",
            timeout=options.read_timeout,
            session_id=request.session,
            reset_session=request.session is not None and request.session in self._reset,
            max_size=options.max_response_size,
        )
        # The node needs the target's time plus its own round trip.
        budget = options.connect_timeout + options.read_timeout * 2
        try:
            resp = await self._call("POST", "/scrape", _encoder.encode(payload), budget)
            try:
                # A body comes at most twice its size as JSON, plus headers.
                limit = 2 * options.max_response_size + _ANSWER_SLACK
                data = await self._read(resp, limit, request)
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            fault = translate_httpx_error(exc, request)
            raise NodeFault(f"node unreachable: {fault}", request=request) from exc
        if request.session is not None:
            self._reset.discard(request.session)
        if resp.status_code != 200:
            raise self._error(resp.status_code, data, request, resp.headers.get("retry-after"))
        try:
            result = _result_decoder.decode(data)
            body = (
                base64.b64decode(result.body)
                if result.body_encoding == "base64"
                else result.body.encode()
            )
        except (msgspec.DecodeError, ValueError) as exc:
            raise NodeFault(f"node sent an invalid answer: {exc}", request=request) from exc
        return Response(
            result.url,
            result.status,
            Headers(result.headers),
            body,
            request,
            redirects=tuple(result.redirects),
            elapsed=result.elapsed,
        )

    def _error(
        self, status: int, data: bytes, request: Request, retry_after: str | None = None
    ) -> FetchError:
        try:
            detail = _error_decoder.decode(data).error
        except msgspec.DecodeError:
            return NodeFault(f"node answered HTTP {status} without an error body", request=request)
        message = f"{detail.code}: {detail.message}" if detail.message else detail.code
        target = TARGET_ERRORS.get(detail.code)
        if target is not None:
            return target[0](message, request=request, kind=detail.kind)
        if detail.code == "invalid_request":
            # The request itself (its URL, headers or body): no node takes it.
            return FetchError(message, request=request, kind="node_invalid_request")
        if status in _PUSHBACK_STATUSES:
            return NodePushback(
                f"node error {message}",
                request=request,
                kind=f"node_{detail.code}",
                retry_after=None
                if retry_after is None
                else parse_retry_after(retry_after, time.time()),
            )
        return NodeFault(f"node error {message}", request=request, kind=f"node_{detail.code}")

    async def check(self, budget: float) -> Health:
        """Read the node's ``/health`` within ``budget`` seconds.

        Raises:
            FetchError: unreachable, or an answer that is not a health record.
            trio.TooSlowError: no answer within ``budget``.
        """
        with trio.fail_after(budget):
            try:
                resp = await self._call("GET", "/health", b"", budget)
                try:
                    data = await self._read(resp, _ANSWER_SLACK)
                finally:
                    await resp.aclose()
            except httpx.HTTPError as exc:
                raise NodeFault(f"health check failed: {exc}") from exc
        if resp.status_code != 200:
            raise NodeFault(f"/health answered HTTP {resp.status_code}")
        try:
            return _health_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise NodeFault(f"invalid /health answer: {exc}") from exc
