"""The ``crawlmesh node`` service: a fetch node crawls use as egress.

Layers: ``_config`` (settings, header allow-list), ``_limits`` (admission
and per-client limits), ``_validate`` (request checks), ``_metrics``
(Prometheus), ``_service`` (the endpoints), ``_server`` (hypercorn, signals,
drain). The SSRF guard is a transport concern (``_transport/_guard.py``).
"""

from ._config import NodeConfig, load_node_config
from ._limits import Admission, AuthFailures, ClientLimits, Refusal
from ._server import build_service, run_node, serve_node
from ._service import NodeService

__all__ = [
    "Admission",
    "AuthFailures",
    "ClientLimits",
    "NodeConfig",
    "NodeService",
    "Refusal",
    "build_service",
    "load_node_config",
    "run_node",
    "serve_node",
]
