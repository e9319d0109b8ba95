"""The ``api`` transport: fetch through a third-party scraping API.

The API is addressed by a URL template, e.g.
``https://api.example.com/v1/?key={env:SCRAPER_KEY}&url={url}``:

* ``{url}``: the target URL, percent-encoded (``quote(url, safe="")``);
* ``{env:NAME}``: the environment variable ``NAME``, read once when the
  transport is created and percent-encoded the same way (a key holding
  ``+`` or ``&`` stays one query value);
* ``{method}``, ``{body}``: the target request's method and (percent-encoded)
  body. Without either, only GET targets can be fetched.

Every call to the API is a GET. An :class:`httpx.AsyncBaseTransport` that
rewrites target requests into API requests sits under a
:class:`DirectTransport`, so the redirect loop, size limits, decoding and
error translation are the direct transport's, and everything above the
rewriter (``Response.url``, ``Response.redirects``, error messages) sees the
target's URLs, never the API's.

Whose fault is it? The API answers with the target's status (that is how
these services work), and nothing in an answer tells a failing target from a
failing API: every answer, 4xx and 5xx included, is returned as the target's
response and never counted against the node. Failing to reach the API at all
(refused, unreachable, TLS, connect timeout) is the node's fault:
``api_connect_error`` / ``api_connect_timeout`` with ``node_fault = True``.
A read timeout is left to the target (``read_timeout``): the API is
usually slow because the target is.

An answer's ``Location`` is taken as the target's redirect, resolved against
the target URL and fetched through the API again.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_from_bytes, urlsplit

import httpx
import structlog

from .._exceptions import ConnectFailed, FetchError, FetchTimeout, SettingsError
from .._request import Request
from .._response import Response
from .._util._log import debug_enabled, request_keys
from .._util._redact import redact_exception, register_secret, register_url_secrets, secret_forms
from ._base import ClassifiedError, FetchOptions, is_node_fault
from ._direct import DirectTransport
from ._pool import H11Pool

__all__ = ["ApiTransport"]

log = structlog.get_logger("crawlmesh.transport")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PER_REQUEST = frozenset({"url", "method", "body"})
# Only these go to the API: the target's own headers (cookies, credentials)
# are not a third party's business, and the API decides what the target sees.
_FORWARDED_HEADERS = frozenset({b"accept-encoding", b"user-agent"})
# (target URL, method, body) -> the API URL.
_Expand = Callable[[str, str, bytes], str]


class ApiTransport:
    """Fetches through a scraping API addressed by a URL template.

    See the module notes for the placeholders and for which failures count
    against the node.

    Args:
        template: the API URL with ``{url}`` and optional ``{env:NAME}``,
            ``{method}`` and ``{body}`` placeholders.
        environ: where ``{env:NAME}`` is looked up (default ``os.environ``).
        ssl_context: verifies an https API (a default context if None).
        name: the node's name, for log lines.

    Raises:
        SettingsError: the template has no ``{url}``, an unknown placeholder,
            a stray brace or no http(s) scheme and host, or names an
            environment variable that is missing or empty (the message
            names the variable, never a value).
    """

    def __init__(
        self,
        template: str,
        *,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "",
    ) -> None:
        self._name = name
        env = os.environ if environ is None else environ
        # The part before the query is safe to show: keys hard-coded in the
        # template usually sit in the query.
        self._shown = template.partition("?")[0]
        register_url_secrets(template)  # a key written into the template itself
        self._parts: list[tuple[str, str]] = []  # (literal text, placeholder or "")
        self._secrets: list[str] = []
        placeholders: set[str] = set()
        pos = 0
        for match in _PLACEHOLDER.finditer(template):
            literal, name = template[pos : match.start()], match.group(1)
            pos = match.end()
            self._check_literal(literal)
            if name.startswith("env:"):
                literal += quote(self._env_value(name[4:], env), safe="")
                name = ""
            elif name not in _PER_REQUEST:
                raise SettingsError(
                    f"api template {self._shown!r}: unknown placeholder {{{name}}}; "
                    "expected {url}, {method}, {body} or {env:NAME}"
                )
            placeholders.add(name)
            self._parts.append((literal, name))
        self._check_literal(template[pos:])
        self._parts.append((template[pos:], ""))
        if "url" not in placeholders:
            raise SettingsError(f"api template {self._shown!r} has no {{url}} placeholder")
        self._any_method = bool(placeholders & {"method", "body"})
        probe = self._expand("http://example.invalid/", "GET", b"")
        try:
            parts = urlsplit(probe)
            parts.port  # noqa: B018  # validates the port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"api template {self._shown!r} does not make an http(s) URL with a host"
            )
        self._direct = DirectTransport(
            cookies=False, transport=_ApiRewriter(self._expand, H11Pool(ssl_context=ssl_context))
        )

    def _check_literal(self, text: str) -> None:
        if "{" in text or "}" in text:
            raise SettingsError(f"api template {self._shown!r}: a brace outside a placeholder")

    def _env_value(self, name: str, env: Mapping[str, str]) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise SettingsError(
                f"api template {self._shown!r}: {{env:{name}}} is not a valid variable name"
            )
        value = env.get(name)
        if not value:
            state = "is not set" if value is None else "is empty"
            raise SettingsError(
                f"api template {self._shown!r}: environment variable {name} {state}"
            )
        self._secrets += secret_forms(value)
        register_secret(value)  # masked in every log line too
        return value

    def _expand(self, url: str, method: str, body: bytes) -> str:
        values = {
            "url": quote(url, safe=""),
            "method": quote(method, safe=""),
            "body": quote_from_bytes(body, safe=""),
            "": "",
        }
        return "".join(literal + values[name] for literal, name in self._parts)

    def __repr__(self) -> str:
        return f"<ApiTransport {self._shown}>"

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        """Fetch ``request`` through the API; see :class:`Transport`.

        Returns:
            The API's answer as the target's response: ``url`` and
            ``redirects`` are target URLs, ``request`` is ``request``.

        Raises:
            FetchError: kind ``unsupported_method`` for a non-GET request
                when the template has neither ``{method}`` nor ``{body}``;
                otherwise as :meth:`DirectTransport.fetch`, with API
                connection failures marked ``node_fault``. Messages never
                hold an environment value from the template.
        """
        if request.method != "GET" and not self._any_method:
            raise FetchError(
                f"the api node fetches only GET requests, not {request.method} "
                "(its template has no {method} or {body})",
                request=request,
                kind="unsupported_method",
            )
        try:
            return await self._direct.fetch(request, options)
        except FetchError as exc:
            redact_exception(exc, self._secrets)
            if is_node_fault(exc) and debug_enabled():
                log.debug(
                    "api failed",
                    **request_keys(request.url, None, self._name, options.attempt),
                    api=self._shown,
                    kind=exc.kind,
                    reason=str(exc),
                )
            raise

    async def aclose(self) -> None:
        """Close the pooled connections to the API."""
        await self._direct.aclose()


class _ApiRewriter(httpx.AsyncBaseTransport):
    """Sends each target request as a GET to the API; answers as the target."""

    def __init__(self, expand: _Expand, pool: H11Pool) -> None:
        self._expand = expand
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = str(request.url.copy_with(fragment=None))
        api_url = self._expand(target, request.method, request.content)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() in _FORWARDED_HEADERS]
        try:
            api_request = httpx.Request(
                "GET", api_url, headers=headers, extensions=request.extensions
            )
        except (httpx.InvalidURL, ValueError) as exc:
            # httpx's message may quote the URL, and with it the key.
            raise ClassifiedError(
                f"the API URL made from the template is invalid: {type(exc).__name__}",
                error_class=FetchError,
                kind="api_error",
                node_fault=True,
            ) from None
        try:
            answer = await self._pool.handle_async_request(api_request)
        except httpx.ConnectError as exc:
            raise ClassifiedError(
                f"cannot reach the API: {exc}",
                error_class=ConnectFailed,
                kind="api_connect_error",
                node_fault=True,
            ) from exc
        except httpx.ConnectTimeout as exc:
            raise ClassifiedError(
                f"connecting to the API timed out: {exc}",
                error_class=FetchTimeout,
                kind="api_connect_timeout",
                node_fault=True,
            ) from exc
        # The same stream: closing this response releases the API connection.
        return httpx.Response(
            answer.status_code,
            headers=answer.headers.raw,
            stream=answer.stream,
            extensions=answer.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
