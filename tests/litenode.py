"""A minimal in-process node for tests that need to inject node faults.

It speaks the node protocol (:mod:`crawlmesh._transport._nodeproto`) over the small
site server and fetches with :class:`DirectTransport`, and it can drop a
share of requests or die after a number of them. It has none of the real
``crawlmesh node`` service's guards (tests/node runs those as processes).
"""

from __future__ import annotations

import base64
import math
import random

import msgspec
import trio

from crawlmesh import DirectTransport, FetchOptions, SiteRequest, SiteResponse
from crawlmesh._exceptions import FetchError
from crawlmesh._request import Request
from crawlmesh._transport import (
    ErrorBody,
    ErrorDetail,
    Health,
    ScrapeRequest,
    ScrapeResult,
    target_failure,
)

__all__ = ["LiteNode"]

_JSON = [("Content-Type", "application/json")]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ScrapeRequest)


def _error(status: int, code: str, message: str = "", retry_after: str = "1") -> SiteResponse:
    body = _encoder.encode(ErrorBody(ErrorDetail(code, message)))
    headers = [*_JSON, ("Retry-After", retry_after)] if status in (429, 503) else _JSON
    return SiteResponse(status, body, headers)


class LiteNode:
    """A node that fetches for crawls; ``handle`` is its site-server handler.

    Args:
        name: reported in answers.
        fail_rate: share of scrape requests answered ``503 overloaded``.
        seed: for the failure draw, so runs repeat.
        die_after: stop answering (close every connection) after serving
            this many requests, as if the process had died (0: never).

    Set ``push_back_until`` (a ``trio.current_time()``) to have the node
    refuse every scrape request until then with its own pushback:
    ``push_back_status`` (429 ``rate_limited`` or 503 ``overloaded``) and
    ``Retry-After: push_back_after``.
    """

    def __init__(
        self, name: str, *, fail_rate: float = 0.0, seed: int = 0, die_after: int = 0
    ) -> None:
        self.name = name
        self.fail_rate = fail_rate
        self.die_after = die_after
        self.health_status = "healthy"
        self.up = True
        self.served = 0
        self.failed = 0
        self.in_flight = 0
        self.sessions: set[str] = set()
        self.push_back_until = -math.inf
        self.push_back_status = 429
        self.push_back_after = "1"
        self.pushed_back = 0
        self._rng = random.Random(seed)
        self._transport = DirectTransport()
        self._started = trio.current_time() if _in_trio() else 0.0

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        if not self.up:
            await trio.aclose_forcefully(stream)  # as if the process had died
            return None
        path = request.target.partition("?")[0]
        if path == "/health":
            health = Health(
                status=self.health_status,  # type: ignore[arg-type]
                in_flight=self.in_flight,
                queue_size=0,
                uptime=trio.current_time() - self._started,
                version="lite",
            )
            return SiteResponse(200, _encoder.encode(health), _JSON)
        if path != "/scrape" or request.method != "POST":
            return _error(404, "not_found", f"no {request.method} {path}")
        try:
            scrape = _decoder.decode(request.body)
            body = base64.b64decode(scrape.body) if scrape.body else b""
        except (msgspec.DecodeError, ValueError) as exc:
            return _error(400, "invalid_request", str(exc))
        if trio.current_time() < self.push_back_until:
            self.pushed_back += 1
            code = "rate_limited" if self.push_back_status == 429 else "overloaded"
            return _error(self.push_back_status, code, "not now", self.push_back_after)
        if self.fail_rate and self._rng.random() < self.fail_rate:
            self.failed += 1
            return _error(503, "overloaded", "the demo node drops a share of requests")
        if scrape.session_id:
            if scrape.reset_session:
                self._transport.forget_session(scrape.session_id)
            self.sessions.add(scrape.session_id)
        self.in_flight += 1
        try:
            response = await self._transport.fetch(
                Request(
                    scrape.url,
                    method=scrape.method,
                    # An intermediary says so (RFC 9110, 7.6.3).
                    headers={**scrape.headers, "Via": f"1.1 {self.name}"},
                    body=body,
                    session=scrape.session_id,
                ),
                FetchOptions(read_timeout=scrape.timeout, max_response_size=scrape.max_size),
            )
        except FetchError as exc:
            status, error = target_failure(exc)
            return SiteResponse(status, _encoder.encode(error), _JSON)
        finally:
            self.in_flight -= 1
        self.served += 1
        if self.die_after and self.served >= self.die_after:
            self.up = False
        result = ScrapeResult(
            status=response.status,
            url=response.url,
            headers=response.headers.raw(),
            body=base64.b64encode(response.body).decode(),
            elapsed=response.elapsed,
            node=self.name,
            redirects=list(response.redirects),
        )
        return SiteResponse(200, _encoder.encode(result), _JSON)


def _in_trio() -> bool:
    try:
        trio.current_time()
    except RuntimeError:
        return False
    return True
