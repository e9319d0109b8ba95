"""The node service's settings, secure by default."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from .._exceptions import SettingsError
from .._transport import AddressGuard
from .._util._files import read_token_file, read_toml_file
from .._util._redact import register_secret

__all__ = ["DEFAULT_ALLOWED_HEADERS", "NodeConfig", "load_node_config", "read_tokens"]

DEFAULT_ALLOWED_HEADERS = (
    "accept",
    "accept-language",
    "authorization",
    "cache-control",
    "content-type",
    "cookie",
    "dnt",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "origin",
    "pragma",
    "range",
    "referer",
    "upgrade-insecure-requests",
    "user-agent",
    # Families: browser client hints and fetch metadata, and custom X- headers.
    "sec-*",
    "x-*",
)
"""Request headers a client may have the node send (case-insensitive; a
trailing ``*`` matches a prefix). The deny-list below wins over it."""

_ALWAYS_DENIED = (
    # Hop-by-hop (RFC 9110, 7.6.1) and framing: the node's HTTP client owns them.
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "proxy-*",
    # The node says where a request came from itself (Via); clients do not
    # get to forge forwarding headers, and the node picks the encodings it
    # can decode under its size limit.
    "via",
    "forwarded",
    "x-forwarded-*",
    "x-real-ip",
    "accept-encoding",
)

_MiB = 1024 * 1024


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of one ``crawlmesh node`` (a TOML file, then CLI flags).

    Every limit is on by default; the defaults suit one node on 2 cores.
    """

    host: str = "127.0.0.1"
    """Address to listen on: loopback unless told otherwise."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8700
    name: str = ""
    """Reported in answers and /health (default: the host name)."""
    region: str = ""
    token_file: str = ""
    """A file of bearer tokens, one per line (``#`` comments allowed)."""
    no_auth: bool = False
    """Serve without tokens. Only for a node that listens on loopback."""
    allow_private: bool = False
    """Let targets resolve to loopback, private and link-local addresses
    (cloud metadata endpoints stay refused)."""
    allow_networks: list[str] = []
    """CIDR ranges allowed although not public, e.g. ``["10.1.2.0/24"]``."""
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 64
    """Fetches at once."""
    max_queue: Annotated[int, msgspec.Meta(ge=0)] = 256
    """Requests waiting for a fetch slot; beyond it, 503 + Retry-After."""
    client_rate: Annotated[float, msgspec.Meta(ge=0)] = 200.0
    """Requests per second per client address (0: no limit)."""
    client_burst: Annotated[int, msgspec.Meta(ge=0)] = 200
    """Requests a client may send at once beyond its rate."""
    client_concurrency: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Fetch slots one client (a token; an address without auth) holds at
    once, fetching or answering; its other requests wait (0: no cap; unset:
    half of ``concurrency``)."""
    client_queue: Annotated[int, msgspec.Meta(ge=0)] = 128
    """Requests of one client waiting beyond its slots (for their body or a
    slot); more answer 429. Unused when ``client_concurrency`` is 0."""
    auth_failure_rate: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Failed auth attempts per second per address before 429 (a budget of
    its own: it never touches a token's limits)."""
    auth_failure_burst: Annotated[int, msgspec.Meta(ge=0)] = 20
    retry_after: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Seconds a 503 (overloaded, draining) asks clients to wait."""
    max_url_length: Annotated[int, msgspec.Meta(ge=16)] = 8192
    max_request_size: Annotated[int, msgspec.Meta(ge=1024)] = 2 * _MiB
    """Bytes of a /scrape request (the JSON, with its base64 body)."""
    max_body_size: Annotated[int, msgspec.Meta(ge=0)] = _MiB
    """Bytes of the body a client asks the node to send to the target."""
    max_headers: Annotated[int, msgspec.Meta(ge=0)] = 64
    max_header_size: Annotated[int, msgspec.Meta(ge=16)] = 8192
    """Bytes of one header's name plus value."""
    allow_headers: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ALLOWED_HEADERS))
    max_response_size: Annotated[int, msgspec.Meta(ge=1024)] = 10 * _MiB
    """Bytes of a target's body (raw or decoded); larger answers ``too_large``."""
    max_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    """The most a client may ask the node to wait for a target (seconds)."""
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    max_redirects: Annotated[int, msgspec.Meta(ge=0)] = 10
    max_sessions: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    """Sessions (cookie jars) kept; the least recently used goes first."""
    session_idle: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """Seconds after which an unused session is dropped."""
    drain_timeout: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """On SIGTERM: seconds in-flight requests get to finish."""
    degraded_queue: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    """/health says "degraded" when the queue is fuller than this share."""
    backlog: Annotated[int, msgspec.Meta(ge=1)] = 1024
    keep_alive: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds an idle client connection stays open."""
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1024
    """Client connections open at once (kept below the open-file limit)."""
    max_client_connections: Annotated[int, msgspec.Meta(ge=0)] = 256
    """Client connections open at once per address (0: no cap)."""
    header_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds a request head may take, from its first byte (a new
    connection's: from its accept)."""
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds a client gets to send a /scrape request body."""
    write_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds a client gets to take each write of an answer; then the
    connection is closed and its slot freed."""

    def __post_init__(self) -> None:
        try:
            AddressGuard(allow_networks=self.allow_networks)
        except ValueError as exc:
            raise SettingsError(f"allow_networks: {exc}") from None
        for pattern in self.allow_headers:
            if not pattern or not pattern.rstrip("*").replace("-", "").isalnum():
                raise SettingsError(f"allow_headers: invalid header name {pattern!r}")

    @property
    def client_slots(self) -> int:
        """Fetch slots per client (0: no cap), ``client_concurrency`` resolved."""
        if self.client_concurrency is None:
            return max(1, self.concurrency // 2)
        return self.client_concurrency

    def guard(self) -> AddressGuard:
        return AddressGuard(allow_private=self.allow_private, allow_networks=self.allow_networks)

    def header_refusal(self, name: str) -> str | None:
        """Why a client may not set header ``name``, or None if it may."""
        lower = name.lower()
        if _matches(lower, _ALWAYS_DENIED):
            return f"header {name!r} is set by the node, not by clients"
        if not _matches(lower, self.allow_headers):
            return f"header {name!r} is not in the node's allow-list (allow_headers)"
        return None


@functools.lru_cache(maxsize=8)
def _rule(patterns: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Header patterns as exact names and name prefixes (``x-*``), lower-cased."""
    lowered = [p.lower() for p in patterns]
    exact = frozenset(p for p in lowered if not p.endswith("*"))
    return exact, tuple(p[:-1] for p in lowered if p.endswith("*"))


def _matches(name: str, patterns: Sequence[str]) -> bool:
    exact, prefixes = _rule(tuple(patterns))
    return name in exact or name.startswith(prefixes)


def load_node_config(path: str | None, overrides: dict[str, Any]) -> NodeConfig:
    """A :class:`NodeConfig` from a TOML file (optional) and CLI overrides.

    Raises:
        SettingsError: an unreadable file, an unknown key or a bad value,
            named in the message.
    """
    data: dict[str, Any] = {}
    if path:
        data = read_toml_file(path, "node config")
        data = data.get("node", data)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(data, NodeConfig)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"node config: {exc}") from None


def read_tokens(path: str) -> tuple[list[str], str | None]:
    """The tokens in ``path``, and a warning if others may read the file.

    Raises:
        SettingsError: unreadable, empty, or a token shorter than 16 characters.
    """
    tokens = read_token_file(path, "--token-file")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    for number, token in enumerate(tokens, 1):
        if len(token) < 16 or any(c.isspace() for c in token):
            raise SettingsError(
                f"--token-file {path}: token {number} must be at least 16 characters "
                "without spaces (try: python3 -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        register_secret(token)  # masked in every log line
    warning = None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warning = f"{path} is readable by other users: chmod 600 it"
    return tokens, warning
