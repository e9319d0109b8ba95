"""Typed settings, and how layers of them are merged and checked.

Layers, lowest first: defaults in code < ``--settings`` TOML file < the
spider's ``custom_settings`` < ``-s KEY=VALUE``. Every layer is checked as it
is applied, so an error names the layer and the key it came from.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin, get_type_hints

import msgspec

from .._exceptions import SettingsError
from .._feeds import FeedSettings
from .._resilience import BanRules, BreakerConfig, RetryPolicy
from .._shaping import RateRule, RateRules
from .._shaping._globs import DomainGlobs
from .._transport import FetchOptions, TimeoutRule
from .._util._files import read_toml_file
from ._nodes import NODE_KINDS, NodeSpec, describe_kinds, validate_nodes
from ._scrapy import scrapy_hint

__all__ = [
    "DEDUPES",
    "LOG_LEVELS",
    "STRATEGIES",
    "BalancerSettings",
    "BreakerSettings",
    "Dedupe",
    "HealthSettings",
    "LogLevel",
    "MetricsSettings",
    "RobotsSettings",
    "Settings",
    "Strategy",
    "ThrottleSettings",
    "Timeouts",
    "fetch_options",
    "load_settings",
    "parse_override",
]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


LogLevel = Literal["debug", "info", "warning", "error"]
"""The log levels, lowest first (``log_level`` and ``--log-level``)."""
LOG_LEVELS: Final[tuple[LogLevel, ...]] = get_args(LogLevel)


class Timeouts(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Per-phase fetch deadlines, in seconds."""

    connect: PositiveFloat = 10.0
    """Opening the connection, TLS included."""
    read: PositiveFloat = 30.0
    """Longest wait for the next bytes of the response."""
    total: PositiveFloat = 120.0
    """One attempt through one node, redirects and body included."""
    kinds: dict[str, TimeoutRule] = {}
    """Overrides by node kind, e.g. {api = {read = 90, total = 180}}."""
    domains: dict[str, TimeoutRule] = {}
    """Overrides by domain glob, e.g. {"*.slow.example" = {read = 60}}; they
    win over the node kind's."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(NODE_KINDS))
        if unknown:
            raise ValueError(
                f"timeouts.kinds: unknown node kind {unknown[0]!r} "
                f"(expected one of {describe_kinds()})"
            )
        if self.domains:
            DomainGlobs(self.domains, what="timeouts.domains")  # names a bad glob


class BreakerSettings(BreakerConfig, forbid_unknown_fields=True, frozen=True):
    """Circuit breakers per node and per (node, domain), and what happens
    to requests no node can serve."""

    enabled: bool = True
    """Run the breakers; false sends every request whatever fails."""
    park_timeout: NonNegFloat = 300.0
    """Seconds a domain that no node can serve holds its queued requests
    (waiting for a breaker to half-open) before they are written to the
    errors file as circuit_open."""
    detect_bans: bool = True
    """Look for block pages and 403 storms (see the bans table); a ban
    counts against the (node, domain) breaker and is retried elsewhere."""


class ThrottleSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """AIMD: each domain's concurrency adapts to its latency and pushback."""

    enabled: bool = True
    """Adapt concurrency per domain (never above concurrency_per_domain)."""
    start: NonNegInt = 0
    """The first limit of a domain; 0: concurrency_per_domain."""
    minimum: PositiveInt = 1
    """The limit never goes below this."""
    target_latency: NonNegFloat = 0.0
    """Seconds; slower successes do not raise the limit (0: any latency)."""
    backoff: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    """Factor applied to the limit on a 429, a 503 or a timeout."""
    cooldown: NonNegFloat = 1.0
    """Seconds after a decrease in which further pushback does not decrease again."""
    quiet: NonNegFloat = 10.0
    """Seconds after any pushback during which the limit never grows."""
    pushback_pause: NonNegFloat = 1.0
    """Seconds a 429 or 503 without Retry-After pauses its domain: a site
    that answers 429 at once is not slowed by fewer requests in flight."""


class RobotsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """robots.txt handling."""

    obey: bool = True
    """Fetch each origin's robots.txt and skip what it disallows."""
    user_agent: str = "crawlmesh"
    """The product token matched against robots.txt groups."""


class HealthSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Node health: active checks and slow start (passive detection is the
    node's circuit breaker, see :class:`BreakerSettings`)."""

    interval: PositiveFloat = 5.0
    """Seconds between active checks of a node."""
    timeout: PositiveFloat = 2.0
    """A check slower than this fails."""
    fails: PositiveInt = 2
    """Consecutive failed checks that mark a node down."""
    passes: PositiveInt = 2
    """Consecutive passed checks that mark it up again."""
    slow_start: NonNegFloat = 10.0
    """Seconds over which a recovered node's weight ramps up to full."""
    cpu_max: Annotated[float, msgspec.Meta(ge=0)] = 90.0
    """A crawlmesh node reporting more CPU than this fails its check."""
    queue_max: NonNegInt = 1000
    """A crawlmesh node reporting a longer queue than this fails its check."""


Strategy = Literal["p2c-ewma", "round-robin", "weighted", "least-conn"]
"""The balancer's strategies: the one list, read for decoding and typing
(a wrong name fails as ``must be one of``, see :func:`_explain`)."""
STRATEGIES: Final[tuple[Strategy, ...]] = get_args(Strategy)


class BalancerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How requests are assigned to egress nodes."""

    strategy: Strategy = "p2c-ewma"
    """p2c-ewma, round-robin, weighted or least-conn."""
    nodes_file: str = ""
    """A TOML file of [[nodes]] (also --nodes); re-read on SIGHUP and on change."""
    nodes_settings_file: str = ""
    """Set by --settings when its file's [[nodes]] are the mesh (nothing above
    them declares nodes): that file's [[nodes]] are then re-read on SIGHUP
    and on change, as a nodes_file's (its other settings are not)."""
    default_region: str = ""
    """The region of requests that neither ask for one nor have a mapped TLD."""
    region_order: list[str] = []
    """Regions to fall back to, in order, when a request's region has no node."""
    geo: dict[str, str] = {}
    """Extra or overriding TLD-to-region entries, e.g. {"ch" = "eu-central"}."""
    node_retries: NonNegInt = 2
    """Other nodes tried when a node itself fails (not the target)."""
    session_ttl: PositiveFloat = 1800.0
    """Idle seconds after which a session's node assignment expires."""
    session_epsilon: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    """Bounded-load slack: no node holds more than (1+e) x its share of sessions."""
    reload_interval: NonNegFloat = 2.0
    """Seconds between checks of the node file for changes (0: only on SIGHUP)."""
    direct_fallback: bool = False
    """When no node can serve a domain (breakers open), fetch it directly
    from this machine instead of holding its requests."""
    health: HealthSettings = HealthSettings()


class MetricsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What ``--metrics`` exports."""

    domain_labels: NonNegInt = 20
    """Domains with a ``domain`` label of their own in the per-node request
    counts: the first ones to reach 10 requests; every other domain is
    "other" (0: all are), so the series stay bounded on a broad crawl."""


Dedupe = Literal["set", "bloom"]
"""How the shared dupe filter stores URLs: exact, or a fixed-size Bloom filter."""
DEDUPES: Final[tuple[Dedupe, ...]] = get_args(Dedupe)

_BACKEND_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "redis+sentinel://")


class BackendSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the crawl's frontier, dupe filter and shared limits live."""

    url: str = ""
    """"" keeps them in this process; redis://HOST:PORT/DB (or rediss://,
    unix://, redis+cluster://, redis+sentinel://HOST:PORT/SERVICE) shares one
    crawl between every worker given the same URL."""
    namespace: str = ""
    """Redis key prefix of the crawl (default: the spider's name)."""
    lease_ttl: Annotated[float, msgspec.Meta(ge=1.0)] = 15.0
    """Seconds a worker may go silent before its leased requests are queued again."""
    claim: PositiveInt = 32
    """Requests a worker claims from Redis at a time."""
    dedupe: Dedupe = "set"
    """"set" (exact) or "bloom" (fixed memory; see the false-positive rate in the README)."""
    bloom_capacity: Annotated[int, msgspec.Meta(ge=1, le=250_000_000)] = 10_000_000
    """URLs the Bloom filter is sized for (at a 0.1% false-positive rate)."""
    max_pages: NonNegInt = 0
    """Requests the whole crawl fetches, counted in Redis across every worker
    (0: no limit); the top-level max_pages counts each worker's own."""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(_BACKEND_SCHEMES):
            raise ValueError("backend.url must be empty or a URL of " + ", ".join(_BACKEND_SCHEMES))


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Every crawl setting, with its default."""

    concurrency: PositiveInt = 64
    """Requests in flight across the whole crawl."""
    concurrency_per_domain: PositiveInt = 8
    """Requests in flight to one host."""
    download_delay: NonNegFloat = 0.0
    """Seconds between two requests to one host (robots.txt Crawl-delay may raise it)."""
    depth_limit: NonNegInt = 0
    """Deepest link depth followed; 0 means no limit."""
    max_pages: NonNegInt = 0
    """Stop after this many fetched pages; 0 means no limit."""
    max_items: NonNegInt = 0
    """Stop after this many items; 0 means no limit."""
    max_response_size: PositiveInt = 10 * 1024 * 1024
    """Largest body accepted, checked while streaming and after decompression."""
    max_redirects: NonNegInt = 10
    """Longest redirect chain followed."""
    user_agent: str = "crawlmesh/0.1 (+https://github.com/crawlmesh/crawlmesh)"
    """The User-Agent header."""
    default_headers: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en",
        }
    )
    """Headers sent with every request (a request's own headers win)."""
    cookies: bool = True
    """Keep cookies the sites set, across the crawl."""
    shutdown_timeout: NonNegFloat = 10.0
    """On Ctrl-C or SIGTERM: how long in-flight requests may take to finish."""
    parse_workers: PositiveInt = 8
    """Callbacks run at once (they share the CPU; more helps only async callbacks)."""
    progress_interval: NonNegFloat = 10.0
    """Seconds between progress lines on stderr; 0 turns them off."""
    log_level: str = "info"
    """debug, info, warning or error (:data:`LogLevel`; any case, so a str)."""
    timeouts: Timeouts = Timeouts()
    robots: RobotsSettings = RobotsSettings()
    rates: dict[str, RateRule] = {}
    """Per-domain limits by glob, e.g. {"*.example.com" = {rate = "5/s", burst = 10}}."""
    retry_after_max: NonNegFloat = 3600.0
    """Longest pause a 429/503 Retry-After may impose on a domain, in seconds."""
    retry: RetryPolicy = RetryPolicy()
    throttle: ThrottleSettings = ThrottleSettings()
    breaker: BreakerSettings = BreakerSettings()
    bans: BanRules = BanRules()
    balancer: BalancerSettings = BalancerSettings()
    nodes: list[NodeSpec] = []
    """The mesh, as [[nodes]] tables in a settings file (or use balancer.nodes_file)."""
    backend: BackendSettings = BackendSettings()
    metrics: MetricsSettings = MetricsSettings()
    pipelines: list[str] = []
    """Item pipelines, in order, as import paths ("myproject.pipelines:Clean")."""
    fetch_hooks: list[str] = []
    """Fetch hooks (request/response/error), in order, as import paths."""
    parse_hooks: list[str] = []
    """Parse hooks (start requests, callback output), in order, as import paths."""
    extensions: list[str] = []
    """Extensions (objects with open/close that subscribe to events), as import paths."""
    hook_timeout: PositiveFloat = 30.0
    """Seconds one fetch-hook call may take before the request fails (hook_timeout)."""
    hook_max_replacements: PositiveInt = 10
    """Times fetch hooks may replace requests for one URL before it fails (hook_loop)."""
    feeds: dict[str, FeedSettings] = {}
    """Feed exports by path, e.g. {"out/items.csv" = {fields = ["title"]}}
    (see :class:`~crawlmesh._feeds.FeedSettings`); -o/-O add to them."""

    def __post_init__(self) -> None:
        if self.rates:
            RateRules(self.rates)  # a bad glob fails here, naming it
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")


def fetch_options(settings: Settings) -> FetchOptions:
    """The per-fetch limits ``settings`` give every request: the one place
    a :class:`FetchOptions` field is read from settings."""
    return FetchOptions(
        connect_timeout=settings.timeouts.connect,
        read_timeout=settings.timeouts.read,
        max_response_size=settings.max_response_size,
        max_redirects=settings.max_redirects,
        user_agent=settings.user_agent,
        default_headers=settings.default_headers,
    )


def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: f.type for f in info.fields}


def _known_keys(struct: type[msgspec.Struct] = Settings, prefix: str = "") -> list[str]:
    keys = []
    for name, t in _field_types(struct).items():
        if isinstance(t, msgspec.inspect.StructType):
            keys.extend(_known_keys(t.cls, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def _check_keys(layer: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Refuse unknown keys, suggesting the closest known one."""
    known = _known_keys()
    tables = {k.rsplit(".", 1)[0] for k in known if "." in k}
    for key, value in layer.items():
        full = prefix + key
        if full in tables:
            if not isinstance(value, Mapping):
                raise SettingsError(f"{source}: setting {full!r} is a table; set {full}.<key>")
            _check_keys(value, source, full + ".")
        elif full not in known:
            scrapy = scrapy_hint(full)
            hint = difflib.get_close_matches(full, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            if scrapy is not None:
                extra = f" ({scrapy})"
            raise SettingsError(f"{source}: unknown setting {full!r}{extra}")


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"timeouts.read": 5}`` into ``{"timeouts": {"read": 5}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SettingsError(f"setting {key!r} conflicts with a value for {p!r}")
        if isinstance(value, Mapping) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = _merge(node[parts[-1]], value)
        else:
            # A table's own keys stay as written: header names may hold dots.
            node[parts[-1]] = dict(value) if isinstance(value, Mapping) else value
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def _explain(exc: msgspec.ValidationError, source: str, merged: Mapping[str, Any]) -> SettingsError:
    message = str(exc)
    m = _AT.search(message)
    what = (message[: m.start()] if m else message).replace("`", "")
    path = re.sub(r"\[\d+\]", "", m.group("path")) if m else ""
    if not path:
        return SettingsError(f"{source}: {what}")
    choices = _choices(path)
    if choices and what.startswith("Invalid enum value"):
        what = f"{path} must be one of {', '.join(map(str, choices))}"
    value: Any = merged
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return SettingsError(f"{source}: setting {path!r} = {value!r}: {what}")


def _choices(path: str) -> tuple[object, ...]:
    """The values, in their declared order, that a ``Literal`` setting at
    dotted ``path`` allows (none: it is no such setting)."""
    struct: Any = Settings
    hint: Any = None
    for part in path.split("."):
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            return ()
        hint = get_type_hints(struct).get(part)
        struct = hint
    return get_args(hint) if get_origin(hint) is Literal else ()


def _check_feeds(feeds: Mapping[str, Any], source: str) -> None:
    """Check each ``[feeds."PATH"]`` table, naming the path and key at fault."""
    for target, table in feeds.items():
        try:
            msgspec.convert(table, FeedSettings, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            m = _AT.search(message)
            what = (message[: m.start()] if m else message).replace("`", "")
            key = f"feeds.{msgspec.json.encode(target).decode()}"
            if m and m.group("path"):
                key += "." + m.group("path")
            raise SettingsError(f"{source}: setting {key}: {what}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``-s KEY=VALUE`` argument; JSON objects and arrays are decoded.

    Raises:
        SettingsError: no ``=`` or undecodable JSON.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SettingsError(f"-s {text!r}: expected KEY=VALUE")
    if value[:1] in "{[" and value:
        try:
            return key, msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"-s {key}: invalid JSON value: {exc}") from None
    return key, value


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML settings file.

    Raises:
        SettingsError: unreadable or invalid TOML.
    """
    return read_toml_file(path, "settings file")


def load_settings(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Settings:
    """Merge ``(source, mapping)`` layers, lowest first, into :class:`Settings`.

    Each mapping may use nested tables, dotted keys, or both. Values given
    as strings (from the command line) are converted to the expected type.

    Raises:
        SettingsError: an unknown key or a value of the wrong type, naming
            the layer and the key.
    """
    merged: dict[str, Any] = {}
    settings = Settings()
    for source, layer in layers:
        if "nodes" in layer:
            validate_nodes(layer["nodes"], source)  # names the node at fault
        if isinstance(layer.get("rates"), Mapping):
            try:
                RateRules(layer["rates"])  # names the glob at fault
            except ValueError as exc:
                raise SettingsError(f"{source}: {exc}") from None
        if isinstance(layer.get("feeds"), Mapping):
            _check_feeds(layer["feeds"], source)  # names the feed at fault
        nested = _nest(layer)
        _check_keys(nested, source)
        merged = _merge(merged, nested)
        try:
            settings = msgspec.convert(merged, Settings, strict=False)
        except msgspec.ValidationError as exc:
            raise _explain(exc, source, merged) from None
    return settings
