"""Records shared by the balancer's policies.

Imports nothing from the engine, spiders or the CLI; a node's declaration
(:class:`NodeSpec`) is the settings'.
"""

from __future__ import annotations

from .._settings import NodeKind, NodeSpec

__all__ = ["NodeKind", "NodeSpec", "NodeState"]
# NodeKind and NodeSpec are the settings' (crawlmesh._settings._nodes), named
# here too because every policy that reads a NodeState reads its spec.


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
