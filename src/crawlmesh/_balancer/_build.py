"""Building the mesh from settings: transports and health probes per node kind.

The kinds are the settings' (:data:`~crawlmesh._settings.NODE_KINDS`); each
has one transport factory in :data:`TRANSPORTS` and one probe in
:data:`PROBES`, keyed on the same names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import trio

from .._exceptions import FetchError, SettingsError
from .._resilience import BreakerConfig
from .._settings import NodeKind, Settings, default_mesh, load_nodes_file, node_token
from .._shaping import Shaper
from .._transport import Deadlines, DirectTransport, NodeTransport, Transport
from ._balancer import Balancer, TransportFactory
from ._health import ProbeResult
from ._stage import BalancedTransport
from ._types import NodeSpec, NodeState

__all__ = [
    "PROBES",
    "TRANSPORTS",
    "build_balancer",
    "build_transport",
    "mesh_around",
    "mesh_specs",
    "probe_node",
]

# Upper bound inside a probe; the health checker's own timeout is shorter.
_PROBE_BUDGET = 60.0


def mesh_specs(settings: Settings) -> Sequence[NodeSpec]:
    """The nodes a crawl uses: the node file, else ``[[nodes]]`` in the
    settings, else one direct node.

    Raises:
        SettingsError: an unreadable or invalid node file.
    """
    if settings.balancer.nodes_file:
        return load_nodes_file(settings.balancer.nodes_file)
    if settings.nodes:
        return settings.nodes
    return default_mesh()


def _node_transport(spec: NodeSpec, cookies: bool) -> Transport:
    return NodeTransport(spec.url, token=node_token(spec))


def _proxy_transport(spec: NodeSpec, cookies: bool) -> Transport:
    from .._transport import ProxyTransport

    return ProxyTransport(spec.url, cookies=cookies, name=spec.name)


def _api_transport(spec: NodeSpec, cookies: bool) -> Transport:
    from .._transport import ApiTransport

    return ApiTransport(spec.template, name=spec.name)


def _direct_transport(spec: NodeSpec, cookies: bool) -> Transport:
    return DirectTransport(cookies=cookies)


TRANSPORTS: Mapping[NodeKind, Callable[[NodeSpec, bool], Transport]] = {
    "direct": _direct_transport,
    "proxy": _proxy_transport,
    "api": _api_transport,
    "node": _node_transport,
}
"""Node kind -> its transport, from the spec and whether to keep cookies."""


def make_transport(spec: NodeSpec, *, cookies: bool = True) -> Transport:
    """The transport for one node."""
    return TRANSPORTS[spec.kind](spec, cookies)


def build_balancer(
    settings: Settings,
    specs: Sequence[NodeSpec] | None = None,
    make: TransportFactory | None = None,
) -> Balancer:
    """A :class:`Balancer` configured from ``settings`` (its nodes' transports
    built by ``make``, else by kind from :data:`TRANSPORTS`)."""
    b = settings.balancer
    return Balancer(
        mesh_specs(settings) if specs is None else specs,
        make or (lambda spec: make_transport(spec, cookies=settings.cookies)),
        strategy=b.strategy,
        health=b.health,
        geo=b.geo,
        default_region=b.default_region,
        region_order=b.region_order,
        session_ttl=b.session_ttl,
        session_epsilon=b.session_epsilon,
        breakers=breaker_config(settings),
        bans=settings.bans if settings.breaker.enabled and settings.breaker.detect_bans else None,
        direct_fallback=b.direct_fallback,
        node_rates=Shaper(settings.rates, per_node=True) if settings.rates else None,
        domain_labels=settings.metrics.domain_labels,
    )


def breaker_config(settings: Settings) -> BreakerConfig | None:
    """The breakers' thresholds, or None when they are turned off."""
    if not settings.breaker.enabled:
        return None
    return settings.breaker


def build_transport(
    settings: Settings, specs: Sequence[NodeSpec] | None = None
) -> BalancedTransport:
    """The node mesh ``settings`` (or ``specs``) declare, as one transport."""
    return _balanced(settings, build_balancer(settings, specs))


def mesh_around(transport: Transport, settings: Settings) -> BalancedTransport:
    """A one-node direct mesh whose node fetches through ``transport`` (a
    custom transport handed to the engine): gated, held by breakers and
    kept up as any mesh. Its direct nodes (the node, the direct fallback)
    use ``transport``; other node kinds cannot join it."""
    if isinstance(transport, BalancedTransport):
        return transport

    def make(spec: NodeSpec) -> Transport:
        if spec.kind != "direct":
            raise SettingsError(
                f"node {spec.name!r}: this engine has a custom transport, not a node mesh"
            )
        return transport

    return _balanced(settings, build_balancer(settings, default_mesh(), make))


def _balanced(settings: Settings, balancer: Balancer) -> BalancedTransport:
    t = settings.timeouts
    return BalancedTransport(
        balancer,
        node_retries=settings.balancer.node_retries,
        deadlines=Deadlines(t.total, t.kinds, t.domains),
    )


async def _probe_service(balancer: Balancer, state: NodeState, started: float) -> ProbeResult:
    transport = balancer.transport_of(state)
    if not isinstance(transport, NodeTransport):
        raise TypeError(f"node {state.spec.name!r} has no node transport")
    health = await transport.check(_PROBE_BUDGET)
    return ProbeResult(
        ok=True,
        latency=trio.current_time() - started,
        status=health.status,
        cpu_usage=health.cpu_usage,
        queue_size=health.queue_size,
    )


async def _probe_proxy(balancer: Balancer, state: NodeState, started: float) -> ProbeResult:
    parts = urlsplit(state.spec.url)
    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
    await stream.aclose()
    return ProbeResult(ok=True, latency=trio.current_time() - started)


async def _probe_nothing(balancer: Balancer, state: NodeState, started: float) -> ProbeResult:
    return ProbeResult(ok=True, latency=trio.current_time() - started)


PROBES: Mapping[NodeKind, Callable[[Balancer, NodeState, float], Awaitable[ProbeResult]]] = {
    "direct": _probe_nothing,
    "proxy": _probe_proxy,
    "api": _probe_nothing,
    "node": _probe_service,
}
"""Node kind -> its active check, given when the check started; a failure
may raise FetchError or OSError (:func:`probe_node` reports it)."""


async def probe_node(balancer: Balancer, state: NodeState) -> ProbeResult:
    """One active check of a node, by kind (:data:`PROBES`): a ``crawlmesh
    node``'s /health is read; a proxy must accept a TCP connection; direct and
    api nodes pass. The caller bounds it with the check timeout."""
    started = trio.current_time()
    try:
        return await PROBES[state.spec.kind](balancer, state, started)
    except (FetchError, OSError, trio.TooSlowError) as exc:
        detail = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)
        return ProbeResult(ok=False, latency=trio.current_time() - started, detail=detail)
