"""Node configuration: what a ``[[nodes]]`` table may say, and reading one.

Each node kind is declared once, in :data:`NODE_KINDS`: its name, what it
is, and the check of the fields it takes. The balancer keys its transports
and health probes on the same names (``crawlmesh._balancer._build``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from .._exceptions import SettingsError
from .._util._files import read_token_file, read_toml_file
from .._util._redact import redact_url, register_secret, register_url_secrets

__all__ = [
    "NODE_KINDS",
    "NodeKind",
    "NodeKindInfo",
    "NodeSpec",
    "default_mesh",
    "describe_kinds",
    "load_nodes_file",
    "load_settings_nodes",
    "node_token",
    "validate_nodes",
]

NodeKind = Literal["direct", "proxy", "api", "node"]


class NodeSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One egress node, as declared in a ``[[nodes]]`` table."""

    name: str
    kind: NodeKind = "direct"
    url: str = ""
    """proxy: ``http://user:pass@host:port``; node: the service's base URL."""
    template: str = ""
    """api: a URL template with ``{url}`` and ``{env:NAME}`` placeholders."""
    token_file: str = ""
    """node: a file whose first line is the service's bearer token."""
    token_env: str = ""
    """node: an environment variable holding the service's bearer token."""
    region: str = ""
    """Where the node's traffic egresses (e.g. ``eu-west``); "" means anywhere."""
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    max_connections: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Requests in flight through this node at once (0: no limit of its own)."""
    tags: list[str] = []

    def __repr__(self) -> str:
        # The url may hold proxy credentials: never show them.
        return (
            f"NodeSpec(name={self.name!r}, kind={self.kind!r}, url={redact_url(self.url)!r}, "
            f"region={self.region!r}, weight={self.weight:g})"
        )


@dataclass(frozen=True, slots=True)
class NodeKindInfo:
    """One node kind's declaration.

    Attributes:
        label: what the kind is, in a few words (messages that list the
            kinds show it).
        check: checks the fields a spec of this kind takes (``url``,
            ``template``, tokens), raising :class:`SettingsError` with ``where``.
        tokens: whether a spec of this kind may name a bearer token
            (``token_file``, ``token_env``).
    """

    label: str
    check: Callable[[NodeSpec, str], None]
    tokens: bool = False


def _check_direct(spec: NodeSpec, where: str) -> None:
    if spec.url or spec.template:
        raise SettingsError(f"{where}: kind 'direct' takes no url or template")


def _check_proxy(spec: NodeSpec, where: str) -> None:
    if not spec.url.startswith("http://"):
        raise SettingsError(f"{where}: kind 'proxy' needs url = 'http://[user:pass@]host:port'")


def _check_api(spec: NodeSpec, where: str) -> None:
    register_url_secrets(spec.template)
    if "{url}" not in spec.template:
        raise SettingsError(f"{where}: kind 'api' needs a template containing {{url}}")


def _check_node(spec: NodeSpec, where: str) -> None:
    if not spec.url.startswith(("http://", "https://")):
        raise SettingsError(f"{where}: kind 'node' needs url = 'http://host:port'")
    node_token(spec, where)


NODE_KINDS: Mapping[NodeKind, NodeKindInfo] = {
    "direct": NodeKindInfo("a direct connection from this process", _check_direct),
    "proxy": NodeKindInfo("an HTTP forward proxy, CONNECT for https", _check_proxy),
    "api": NodeKindInfo("a scraping API called with a URL template", _check_api),
    "node": NodeKindInfo("a `crawlmesh node` service", _check_node, tokens=True),
}
"""Every node kind, in the order messages list them; the keys are :data:`NodeKind`'s."""


def describe_kinds() -> str:
    """The node kinds for a message: ``direct (a direct connection ...), ...``."""
    return ", ".join(f"{kind} ({info.label})" for kind, info in NODE_KINDS.items())


def _describe(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"node {index + 1}" + (f" ({name!r})" if name else "")


def validate_nodes(raw_nodes: Any, source: str) -> list[NodeSpec]:
    """Check a ``nodes`` array and return typed specs.

    Raises:
        SettingsError: naming the source, the node and the problem.
    """
    if not isinstance(raw_nodes, list):
        raise SettingsError(f"{source}: 'nodes' must be an array of tables ([[nodes]])")
    specs: list[NodeSpec] = []
    for i, raw in enumerate(raw_nodes):
        where = f"{source}: {_describe(i, raw)}"
        if isinstance(raw, dict) and raw.get("kind", "direct") not in NODE_KINDS:
            raise SettingsError(f"{where}: kind {raw['kind']!r} is not one of {describe_kinds()}")
        try:
            spec = msgspec.convert(raw, NodeSpec, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc).replace("`", "").replace(" - at $", " at ")
            raise SettingsError(f"{where}: {message}") from None
        _check_spec(spec, where)
        specs.append(spec)
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SettingsError(f"{source}: duplicate node names: {', '.join(dupes)}")
    return specs


def _check_spec(spec: NodeSpec, where: str) -> None:
    if not spec.name or not spec.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SettingsError(f"{where}: name must be letters, digits, '-', '_' or '.'")
    if not NODE_KINDS[spec.kind].tokens and (spec.token_file or spec.token_env):
        takers = " or ".join(repr(kind) for kind, info in NODE_KINDS.items() if info.tokens)
        raise SettingsError(f"{where}: token_file and token_env are for kind {takers}")
    if spec.url:
        register_url_secrets(spec.url)  # a proxy's password, masked in every log line
    NODE_KINDS[spec.kind].check(spec, where)


def load_nodes_file(path: str | os.PathLike[str]) -> list[NodeSpec]:
    """Read ``[[nodes]]`` from a TOML file.

    Raises:
        SettingsError: unreadable file, invalid TOML, or an invalid node.
    """
    source = f"nodes file {os.fspath(path)}"
    data = read_toml_file(path, "nodes file")
    unknown = sorted(set(data) - {"nodes"})
    if unknown:
        raise SettingsError(f"{source}: unknown top-level keys {unknown}; expected [[nodes]]")
    specs = validate_nodes(data.get("nodes", []), source)
    if not specs:
        raise SettingsError(f"{source}: no [[nodes]] declared")
    return specs


def load_settings_nodes(path: str | os.PathLike[str]) -> list[NodeSpec]:
    """Read the ``[[nodes]]`` of a settings file (its other keys are not
    looked at: they were checked when the crawl started).

    Raises:
        SettingsError: unreadable file, invalid TOML, an invalid node, or
            no node at all.
    """
    source = f"settings file {os.fspath(path)}"
    specs = validate_nodes(read_toml_file(path, "settings file").get("nodes", []), source)
    if not specs:
        raise SettingsError(f"{source}: no [[nodes]] declared")
    return specs


def node_token(spec: NodeSpec, where: str = "") -> str | None:
    """The bearer token of a ``node``-kind spec (from its file or variable).

    Raises:
        SettingsError: the file is unreadable or empty, or the variable unset.
    """
    where = where or f"node {spec.name!r}"
    if spec.token_file and spec.token_env:
        raise SettingsError(f"{where}: give token_file or token_env, not both")
    if spec.token_env:
        token = os.environ.get(spec.token_env, "").strip()
        if not token:
            raise SettingsError(f"{where}: environment variable {spec.token_env} is not set")
    elif spec.token_file:
        token = read_token_file(spec.token_file, f"{where}: token_file")[0]
    else:
        return None
    register_secret(token)  # masked in every log line
    return token


def default_mesh() -> Sequence[NodeSpec]:
    """The mesh used without a node file: one direct node."""
    return (NodeSpec(name="direct", kind="direct"),)
