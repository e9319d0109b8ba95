"""An HTTP forward proxy: its URL, its CONNECT tunnels and its refusals.

Failures the proxy owns are raised as :class:`ClassifiedError` marked
``node_fault``; the target's failures as the proxy reports them (RFC 9209
``Proxy-Status`` error types) as if the target had been fetched directly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import h11
import trio

from .._exceptions import ConnectFailed, ConnectionBroken, FetchError, FetchTimeout
from .._util._redact import redact_url, register_secret, secret_forms
from ._base import ClassifiedError
from ._conn import READ_SIZE
from ._http11 import MAX_HEAD

__all__ = ["ProxyURL", "open_tunnel"]


# RFC 9209 Proxy-Status error types that say the proxy could not get a
# response from the target: the target's failure, as if fetched directly.
# Every other error type (and a CONNECT refused without one) is the proxy's.
_TARGET_ERRORS: dict[str, tuple[type[FetchError], str]] = {
    "dns_error": (ConnectFailed, "connect_error"),
    "dns_timeout": (FetchTimeout, "connect_timeout"),
    "destination_not_found": (ConnectFailed, "connect_error"),
    "destination_unavailable": (ConnectFailed, "connect_error"),
    "destination_ip_unroutable": (ConnectFailed, "connect_error"),
    "connection_refused": (ConnectFailed, "connect_error"),
    "connection_timeout": (FetchTimeout, "connect_timeout"),
    "connection_terminated": (ConnectionBroken, "connection_error"),
    "connection_read_timeout": (FetchTimeout, "read_timeout"),
    "http_response_timeout": (FetchTimeout, "read_timeout"),
    "http_response_incomplete": (ConnectionBroken, "connection_error"),
    "http_protocol_error": (ConnectionBroken, "connection_error"),
    "tls_protocol_error": (ConnectFailed, "connect_error"),
    "tls_certificate_error": (ConnectFailed, "connect_error"),
    "tls_alert_received": (ConnectFailed, "connect_error"),
}
_PROXY_STATUS_ERROR = re.compile(r";\s*error\s*=\s*([A-Za-z0-9_.-]+)")


class ProxyURL:
    """A parsed proxy URL; the credentials live only in ``auth``."""

    __slots__ = ("auth", "host", "port", "redacted", "secrets")

    def __init__(self, url: str) -> None:
        self.redacted = redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            # The parser's own message may quote the URL: ours is redacted.
            raise ValueError(f"invalid proxy URL {self.redacted!r}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"invalid proxy URL {self.redacted!r}: expected http://[user:pass@]host:port"
            )
        self.host = parts.hostname
        self.port = port or 80
        self.auth: bytes | None = None
        self.secrets: list[str] = []
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.auth = f"Basic {token}".encode("ascii")
            self.secrets = [token, *secret_forms(user), *secret_forms(password)]
            self.secrets += [parts.username, parts.password or ""]
            for secret in (token, user, password):
                register_secret(secret)  # masked in every log line too

    def refusal(
        self,
        status: int,
        reason: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        tunnel: str | None,
    ) -> ClassifiedError | None:
        """The error for a response the proxy gave instead of the target's.

        None when the response is (as far as can be told) the target's: for
        absolute-form requests only a 407 or a ``Proxy-Status`` with an
        ``error`` parameter is the proxy's own; a tunnel is the proxy's
        until it answers 2xx.
        """
        what = f"{status} {reason.decode('latin-1')}".strip()
        where = f"proxy {self.host}:{self.port}"
        if status == 407:
            detail = "refused the credentials" if self.auth else "requires credentials"
            if tunnel is not None:
                detail += f" for CONNECT {tunnel}"
            return ClassifiedError(
                f"{where} {detail} ({what})",
                error_class=FetchError,
                kind="proxy_auth",
                node_fault=True,
            )
        error_type = _proxy_status_error(headers)
        if error_type in _TARGET_ERRORS:
            error_class, kind = _TARGET_ERRORS[error_type]
            return ClassifiedError(
                f"{where} could not reach the target: {what} ({error_type})",
                error_class=error_class,
                kind=kind,
                node_fault=False,
            )
        if error_type is None and tunnel is None:
            return None
        if tunnel is not None:
            message = f"{where} refused CONNECT {tunnel}: {what}"
        else:
            message = f"{where} failed: {what}"
        if error_type:
            message += f" ({error_type})"
        return ClassifiedError(message, error_class=FetchError, kind="proxy_error", node_fault=True)


def _proxy_status_error(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"proxy-status":
            match = _PROXY_STATUS_ERROR.search(value.decode("latin-1"))
            if match:
                return match.group(1).lower()
    return None


async def open_tunnel(stream: trio.abc.Stream, proxy: ProxyURL, host: str, port: int) -> None:
    """Ask the proxy for a tunnel to ``host:port``; raises unless it says 2xx."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = [(b"Host", authority.encode())]
    if proxy.auth is not None:
        headers.append((b"Proxy-Authorization", proxy.auth))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    data = conn.send(h11.Request(method="CONNECT", target=authority, headers=headers)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    try:
        await stream.send_all(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(READ_SIZE)))
            elif isinstance(event, h11.Response):
                break
            elif not isinstance(event, h11.InformationalResponse):
                raise h11.RemoteProtocolError("no response to CONNECT")
    except (h11.RemoteProtocolError, trio.BrokenResourceError, OSError) as exc:
        raise ClassifiedError(
            f"proxy {proxy.host}:{proxy.port} broke off CONNECT {authority}: "
            f"{str(exc) or type(exc).__name__}",
            error_class=ConnectionBroken,
            kind="proxy_error",
            node_fault=True,
        ) from exc
    if 200 <= event.status_code < 300:
        if conn.trailing_data[0]:
            # Bytes before our ClientHello: not a clean tunnel.
            raise ClassifiedError(
                f"proxy {proxy.host}:{proxy.port} sent data into a new tunnel",
                error_class=ConnectionBroken,
                kind="proxy_error",
                node_fault=True,
            )
        return
    error = proxy.refusal(event.status_code, event.reason, event.headers, tunnel=authority)
    assert error is not None  # a tunnel is always refused by the proxy itself
    raise error
