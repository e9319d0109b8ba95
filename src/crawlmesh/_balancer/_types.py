"""Records shared by the balancer's policies.

Low layer: imports nothing from the engine, spiders, settings or the CLI.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .._util._redact import redact_url

__all__ = ["NodeKind", "NodeSpec", "NodeState"]

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


class NodeState:
    """What policies know about a node at run time.

    Mutated only by the balancer on the event loop. Policies read it; the
    strategy keeps its own per-node data keyed by ``index``.

    Attributes:
        spec: the declaration.
        index: position in the current mesh (stable for the mesh's life).
        in_flight: requests currently sent through the node.
        effective_weight: ``spec.weight`` scaled by slow start (0 < w <= weight).
    """

    __slots__ = ("effective_weight", "in_flight", "index", "spec")

    def __init__(self, spec: NodeSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.in_flight = 0
        self.effective_weight = spec.weight

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return (
            f"<NodeState {self.spec.name} w={self.effective_weight:g} in_flight={self.in_flight}>"
        )
