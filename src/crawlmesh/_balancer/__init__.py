"""The balancer stage: every request is assigned an egress node.

Selection is a fixed pipeline of small policies, in this order:
health (active checks, slow start) -> circuit breakers (per node and per
(node, domain), fed by real outcomes and ban detection) -> geo
(prefer the request's region, then a fallback order) -> affinity (sessions
stick to a node, consistent hashing with bounded loads) -> strategy
(round-robin, weighted, least-conn, p2c-ewma).

* :class:`Balancer`: the facade the engine holds; it leases a node for a
  request (:class:`Lease`, or :class:`NodesBusy` while none can take it)
  and learns from each outcome. :class:`BalancedTransport` is the fetch
  stage's view of it: a transport over the whole mesh.
* :func:`build_balancer` / :func:`mesh_around`: the mesh from settings, one
  transport factory (:data:`TRANSPORTS`) and one probe (:data:`PROBES`) per
  node kind; :func:`reload_nodes` and :func:`run_mesh_upkeep` keep it
  current while a crawl runs; :func:`check_nodes` is ``crawlmesh nodes check``.
* The policies, each usable alone: :class:`HealthTracker`
  (:func:`open_health_checks`), :class:`GeoRouter`, :class:`AffinityRing`
  and the strategies (:data:`STRATEGIES`, :func:`make_strategy`), all over
  :class:`NodeState` records of the settings' :class:`NodeSpec`.
"""

from ._balancer import DIRECT_FALLBACK, Balancer, Lease, NodesBusy, TransportFactory, session_of
from ._build import (
    PROBES,
    TRANSPORTS,
    build_balancer,
    build_transport,
    mesh_around,
    mesh_specs,
    probe_node,
)
from ._check import NodeCheck, check_nodes
from ._geo import DEFAULT_GEO_MAP, GeoRouter
from ._health import HealthTracker, Probe, ProbeResult, open_health_checks
from ._mesh import reload_nodes, run_mesh_upkeep
from ._ring import AffinityRing
from ._stage import BalancedTransport
from ._strategies import (
    STRATEGIES,
    LeastConn,
    PeakEwmaP2C,
    RoundRobin,
    SmoothWeighted,
    Strategy,
    make_strategy,
)
from ._types import NodeSpec, NodeState

__all__ = [
    "DEFAULT_GEO_MAP",
    "DIRECT_FALLBACK",
    "PROBES",
    "STRATEGIES",
    "TRANSPORTS",
    "AffinityRing",
    "BalancedTransport",
    "Balancer",
    "GeoRouter",
    "HealthTracker",
    "Lease",
    "LeastConn",
    "NodeCheck",
    "NodeSpec",
    "NodeState",
    "NodesBusy",
    "PeakEwmaP2C",
    "Probe",
    "ProbeResult",
    "RoundRobin",
    "SmoothWeighted",
    "Strategy",
    "TransportFactory",
    "build_balancer",
    "build_transport",
    "check_nodes",
    "make_strategy",
    "mesh_around",
    "mesh_specs",
    "open_health_checks",
    "probe_node",
    "reload_nodes",
    "run_mesh_upkeep",
    "session_of",
]
