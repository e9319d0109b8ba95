"""The ``direct`` transport: fetch from this process through httpx."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import AsyncIterable
from typing import Any

import httpx
import trio

from .._exceptions import (
    ConnectFailed,
    ConnectionBroken,
    FetchError,
    FetchTimeout,
    InvalidURL,
    RedirectError,
    ResponseTooLarge,
)
from .._request import Request
from .._response import Headers, Response
from .._util._url import DEFAULT_PORTS, canonicalize, normalize, resolve, split_http_url, strip_href
from ._base import ClassifiedError, FetchOptions
from ._decoding import make_decoder
from ._http11 import BODY_LENGTH
from ._pool import H11Pool

__all__ = ["MAX_COOKIES_PER_JAR", "DirectTransport", "translate_httpx_error"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT_ENCODING = "gzip, deflate, br"
_MAX_SESSION_JARS = 10_000
# Cookies one jar keeps (browsers keep ~180 per domain): a site that sets
# thousands cannot grow a jar, or the cost of each request, without bound.
MAX_COOKIES_PER_JAR = 1000
_CREDENTIALS = frozenset({"authorization", "cookie"})


def translate_httpx_error(exc: httpx.HTTPError, request: Request) -> FetchError:
    """Map an httpx exception onto the crawlmesh tree (the caller chains it)."""
    if isinstance(exc, ClassifiedError):
        # Raised by a transport that knew whose fault it was (a proxy's).
        return exc.to_fetch_error(request)
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchTimeout(f"connect timeout: {msg}", request=request, kind="connect_timeout")
    if isinstance(exc, httpx.TimeoutException):
        return FetchTimeout(f"read timeout: {msg}", request=request, kind="read_timeout")
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(msg, request=request)
    if isinstance(exc, httpx.TransportError):
        return ConnectionBroken(msg, request=request)
    return FetchError(msg, request=request)


class DirectTransport:
    """Fetches straight from this process, over one pooled httpx client.

    Requests, responses and the cookie jar are httpx's; the bytes go through
    an :class:`httpx.AsyncBaseTransport` (by default crawlmesh's own HTTP/1.1
    pool). Redirects are followed here rather than by ``AsyncClient.send``,
    which would also parse a malformed Location before we could judge it.

    Args:
        cookies: keep cookies across requests (one jar for the crawl, and
            one per session).
        shared_cookies: whether requests without a session share a jar (a
            node serving many clients keeps cookies per session only).
        transport: the httpx transport to send through (default: H11Pool).
        max_sessions: session jars kept; the least recently used goes first.
        session_idle: seconds after which an unused session's jar is
            dropped (0: only the count bounds them).
    """

    def __init__(
        self,
        *,
        cookies: bool = True,
        shared_cookies: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        max_sessions: int = _MAX_SESSION_JARS,
        session_idle: float = 0.0,
    ) -> None:
        self._cookies = cookies
        # The jar of requests without a session; None: they keep no cookies.
        self._jar = httpx.Cookies() if cookies and shared_cookies else None
        # Least recently used first: session -> (jar, last use).
        self._session_jars: OrderedDict[str, tuple[httpx.Cookies, float]] = OrderedDict()
        self._max_sessions = max_sessions
        self._session_idle = session_idle
        self._transport = transport or H11Pool()
        # The headers every request starts from, for the last options' defaults.
        self._base: tuple[dict[str, str], str, dict[str, tuple[str, str]]] | None = None

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def session_count(self) -> int:
        """Sessions holding a cookie jar (idle ones not yet swept included)."""
        return len(self._session_jars)

    def _session_jar(self, session: str) -> httpx.Cookies | None:
        if not self._cookies:
            return None
        jars = self._session_jars
        now = trio.current_time()
        if self._session_idle:
            # Least recently used first: the expired ones are at the front.
            cutoff = now - self._session_idle
            while jars and next(iter(jars.values()))[1] < cutoff:
                jars.popitem(last=False)
        entry = jars.pop(session, None)
        jar = httpx.Cookies() if entry is None else entry[0]
        jars[session] = (jar, now)
        if len(jars) > self._max_sessions:
            jars.popitem(last=False)  # the least recently used session
        return jar

    def forget_session(self, session: str) -> None:
        """Drop a session's cookie jar (its next request starts afresh)."""
        self._session_jars.pop(session, None)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        jar: httpx.Cookies | None,
        extensions: dict[str, Any],
    ) -> _Reply:
        """One hop: send, keep the cookies it sets, return status, headers and body."""
        pool = self._transport
        if not isinstance(pool, H11Pool):
            # httpx.Request directly: AsyncClient.build_request merges
            # defaults we do not use and costs as much as the request.
            hreq = httpx.Request(
                method, url, headers=headers, content=body or None, extensions=extensions
            )
            if jar:
                jar.set_cookie_header(hreq)
            resp = await pool.handle_async_request(hreq)
            if jar is not None and "set-cookie" in resp.headers:
                jar.extract_cookies(resp)
                _trim(jar)
            reply_headers = Headers(resp.headers.multi_items())
            codings, declared = _framing(method, resp.status_code, reply_headers)
            return _Reply(resp.status_code, reply_headers, resp.stream, resp, declared, codings)
        # Our own pool: the URL's parts and the header bytes are made here,
        # with no httpx.Request or httpx.Response unless cookies need them.
        scheme, host, port, authority, path = _url_parts(url)
        raw: list[tuple[bytes, bytes]] = []
        names = {k.lower() for k in headers}
        if "host" not in names:
            raw.append((b"Host", authority))
        if "content-length" not in names and "transfer-encoding" not in names:
            if body:
                headers = {**headers, "Content-Length": str(len(body))}
            elif method in ("POST", "PUT", "PATCH"):
                raw.append((b"Content-Length", b"0"))
        raw += [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        if jar:
            cookie = _cookie_header(jar, method, url)
            if cookie is not None:
                raw.append((b"Cookie", cookie))
        timeouts = extensions["timeout"]
        head, stream = await pool.send(
            method,
            scheme,
            host,
            port,
            authority,
            path,
            raw,
            body,
            connect_timeout=_seconds(timeouts["connect"]),
            read_timeout=_seconds(timeouts["read"]),
            write_timeout=_seconds(timeouts["write"]),
        )
        if jar is not None and any(name == b"set-cookie" for name, _ in head.headers):
            jar.extract_cookies(
                httpx.Response(
                    head.status, headers=head.headers, request=httpx.Request(method, url)
                )
            )
            _trim(jar)
        return _Reply(
            head.status,
            Headers(_decode_headers(head.headers)),
            stream,
            stream,
            head.length if head.framing == BODY_LENGTH else None,
            tuple(c.decode("ascii") for c in head.transfer_codings),
        )

    def _base_headers(self, options: FetchOptions) -> dict[str, tuple[str, str]]:
        """Accept-Encoding, the default headers and the User-Agent, by
        lower-cased name (names are case-insensitive: the last layer wins
        whatever its case); kept while the options' defaults stay the same
        (the fetch stage hands every request the same dict)."""
        base = self._base
        defaults, agent = options.default_headers, options.user_agent
        if base is None or base[0] is not defaults or base[1] != agent:
            merged = {"accept-encoding": ("Accept-Encoding", _ACCEPT_ENCODING)}
            merged.update((k.lower(), (k, v)) for k, v in defaults.items())
            if agent:
                merged["user-agent"] = ("User-Agent", agent)
            base = self._base = (defaults, agent, merged)
        return base[2]

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        """Fetch ``request``, following redirects; see :class:`Transport`."""
        extensions = {
            "timeout": {
                "connect": options.connect_timeout,
                "read": options.read_timeout,
                "write": options.read_timeout,
                "pool": None,
            }
        }
        jar = self._jar if request.session is None else self._session_jar(request.session)
        merged = self._base_headers(options)
        if request.headers:
            merged = {**merged, **{k.lower(): (k, v) for k, v in request.headers.items()}}
        headers = dict(merged.values())
        method, body = request.method, request.body
        try:
            # (The engine's admission did this already; a transport used
            # alone gets the same URL: WHATWG's form, no fragment.)
            url = normalize(request.url)
        except InvalidURL as exc:
            raise FetchError(str(exc), request=request, kind="invalid_url") from None
        seen: set[str] = set()  # canonical URLs of the chain, once it redirects
        chain: list[str] = []
        started = trio.current_time()
        for _ in range(options.max_redirects + 1):
            try:
                reply = await self._send(method, url, headers, body, jar, extensions)
            except httpx.HTTPError as exc:
                raise translate_httpx_error(exc, request) from exc
            except (httpx.InvalidURL, ValueError) as exc:
                # Hosts or ports urllib accepts but httpx refuses: the
                # request's fault on the first hop, the target's after it.
                if chain:
                    raise RedirectError(
                        f"redirect to a bad location {url!r}: {exc}",
                        request=request,
                        kind="bad_redirect",
                    ) from exc
                raise FetchError(
                    f"invalid URL {url!r}: {exc}", request=request, kind="invalid_url"
                ) from exc
            try:
                location = reply.headers.get("location") if reply.status in _REDIRECTS else None
                if location is None:
                    data = await _read_body(reply, request, options.max_response_size)
                    return Response(
                        url,
                        reply.status,
                        reply.headers,
                        data,
                        request,
                        redirects=tuple(chain),
                        elapsed=trio.current_time() - started,
                    )
            finally:
                await reply.aclose()
            next_url = _redirect_target(url, location, seen, request)
            chain.append(url)
            status = reply.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            if _origin(next_url) != _origin(url):
                # Credentials are for the origin they were given to; the jar
                # adds the cookies that belong to the next one.
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
            url = next_url
        raise RedirectError(
            f"more than {options.max_redirects} redirects",
            request=request,
            kind="too_many_redirects",
        )


def _redirect_target(url: str, location: str, seen: set[str], request: Request) -> str:
    """Where a redirect from ``url`` to ``location`` goes, its canonical form
    added to ``seen`` (the chain's, ``url``'s first).

    Raises:
        RedirectError: the location is not a URL, or the chain loops.
    """
    try:
        # As a browser resolves it (spaces encoded, backslashes as
        # slashes, ...), without a fragment, which is never sent.
        next_url = normalize(resolve(url, strip_href(location)))
        canon = canonicalize(next_url)
    except (InvalidURL, ValueError) as exc:
        raise RedirectError(
            f"redirect to a bad location {location!r}: {exc}",
            request=request,
            kind="bad_redirect",
        ) from None
    if not seen:
        seen.add(canonicalize(url))
    if canon in seen:
        raise RedirectError(
            f"redirect loop: {url} -> {next_url}", request=request, kind="redirect_loop"
        )
    seen.add(canon)
    return next_url


def _trim(jar: httpx.Cookies) -> None:
    """Keep at most MAX_COOKIES_PER_JAR cookies in ``jar``: expired ones go
    first, then the earliest stored (the jar orders by domain, path, then
    name, each as first seen)."""
    cookies = jar.jar
    excess = len(cookies) - MAX_COOKIES_PER_JAR
    if excess > 0:
        cookies.clear_expired_cookies()
        excess = len(cookies) - MAX_COOKIES_PER_JAR
        for cookie in list(cookies)[:excess]:
            cookies.clear(cookie.domain, cookie.path, cookie.name)


def _origin(url: str) -> tuple[str, str, int | None]:
    p = split_http_url(url)
    return p.scheme, p.hostname or "", p.port


class _Reply:
    """One hop's response: status, headers, and the body to read, then close.

    ``declared``: the body's length when Content-Length frames it (None when
    there is no body, or it is framed otherwise); ``transfer_codings``: the
    body's transfer codings other than chunked, in the order applied.
    """

    __slots__ = ("_closer", "declared", "headers", "status", "stream", "transfer_codings")

    def __init__(
        self,
        status: int,
        headers: Headers,
        stream: Any,
        closer: httpx.Response | httpx.AsyncByteStream,
        declared: int | None,
        transfer_codings: tuple[str, ...],
    ) -> None:
        self.status = status
        self.headers = headers
        self.stream: AsyncIterable[bytes] = stream
        self._closer = closer
        self.declared = declared
        self.transfer_codings = transfer_codings

    async def aclose(self) -> None:
        await self._closer.aclose()


# http(s) URLs httpx would send exactly as written (lower-case host aside):
# an ASCII host name, a port, and a path and query of characters it leaves
# alone. Anything else (IPv6 literals, IDNs, characters to escape) is parsed
# by httpx.URL.
_PLAIN_URL = re.compile(
    r"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"((?:/|\?)(?:[-A-Za-z0-9._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?(?:#.*)?\Z"
)


def _url_parts(url: str) -> tuple[bytes, str, int, bytes, bytes]:
    """(scheme, host, port, authority, path with query) as httpx sends them.

    Raises:
        httpx.InvalidURL: a URL httpx would refuse.
    """
    match = _PLAIN_URL.match(url)
    if match is not None:
        scheme, host, port_text, path = match.groups()
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
        if 0 < port < 65536:
            host = host.lower()
            authority = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
            if not path or path[0] == "?":
                path = "/" + (path or "")
            return scheme.encode(), host, port, authority.encode(), path.encode()
    parsed = httpx.URL(url)
    scheme_bytes = parsed.raw_scheme
    port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 80)
    return scheme_bytes, parsed.host, port, parsed.netloc, parsed.raw_path


def _seconds(value: float | None) -> float:
    return float("inf") if value is None else float(value)


def _cookie_header(jar: httpx.Cookies, method: str, url: str) -> bytes | None:
    """The Cookie header ``jar`` holds for ``url``, if any."""
    probe = httpx.Request(method, url)
    jar.set_cookie_header(probe)
    value = probe.headers.get("cookie")
    return None if value is None else value.encode("latin-1")


def _decode_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header bytes as text, decoded as httpx does: ASCII, else UTF-8 if
    every value is, else Latin-1."""
    try:
        return [(k.decode("ascii"), v.decode("ascii")) for k, v in raw]
    except UnicodeDecodeError:
        pass
    try:
        return [(k.decode("utf-8"), v.decode("utf-8")) for k, v in raw]
    except UnicodeDecodeError:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


def _framing(method: str, status: int, headers: Headers) -> tuple[tuple[str, ...], int | None]:
    """(transfer codings other than chunked, Content-Length framing the body
    or None) of a response from a transport other than H11Pool, by the rules
    of RFC 9112 6.3 (H11Pool's heads say so themselves)."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return (), None
    te = headers.get("transfer-encoding")
    if te is not None:
        codings = [c.strip().lower() for c in te.split(",") if c.strip()]
        return tuple(c for c in codings if c != "chunked"), None
    declared = headers.get("content-length")
    return (), int(declared) if declared is not None and declared.isdigit() else None


async def _read_body(resp: _Reply, request: Request, max_size: int) -> bytes:
    declared = resp.declared
    if declared is not None and declared > max_size:
        raise ResponseTooLarge(
            f"Content-Length {declared} exceeds the size limit of {max_size} bytes",
            request=request,
        )
    raw = 0
    try:
        decoder = make_decoder(
            resp.headers.get("content-encoding"),
            max_size,
            transfer_codings=resp.transfer_codings,
        )
        async for chunk in resp.stream:
            raw += len(chunk)
            if raw > max_size:
                raise ResponseTooLarge(
                    f"body exceeds the size limit of {max_size} bytes", request=request
                )
            decoder.feed(chunk)
        return decoder.finish()
    except httpx.HTTPError as exc:
        raise translate_httpx_error(exc, request) from exc
    except FetchError as exc:
        raise exc.with_request(request) from exc.__cause__
