"""The balancer as the fetch stage sees it: a transport over the mesh.

Each fetch asks the :class:`Balancer` for a node, sends the request through
that node's transport, and reports the outcome. When the node itself fails
(unreachable, overloaded, a refused proxy), the request is tried on another
node, up to ``node_retries`` times; a failure of the target is final here
(retries of those are the resilience stage's business).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
import trio

from .._exceptions import FetchError, FetchTimeout
from .._request import Request
from .._response import Response
from .._transport._base import FetchOptions, is_node_fault
from ._balancer import Balancer, session_of

__all__ = ["BalancedTransport"]

log = structlog.get_logger("crawlmesh.balancer")


class BalancedTransport:
    """A :class:`~crawlmesh.Transport` that fetches through the node mesh.

    Args:
        balancer: chooses nodes and learns from outcomes.
        node_retries: other nodes tried after a node fault.
    """

    def __init__(self, balancer: Balancer, *, node_retries: int = 2) -> None:
        self.balancer = balancer
        self._retries = node_retries

    async def aclose(self) -> None:
        await self.balancer.aclose()

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        host = urlsplit(request.url).hostname or ""
        if request.session is None:
            session = session_of(request)
            if session is not None:
                # A session given as a header: transports key cookie jars on it.
                request = request.replace(session=session)
        tried: set[str] = set()
        while True:
            lease = await self.balancer.acquire(request, host, options.avoid_nodes | tried)
            try:
                response = await lease.transport.fetch(request, options)
            except FetchError as exc:
                exc.node = lease.node.name  # a retry of the request avoids it
                self.balancer.release(lease, error=exc)
                if is_node_fault(exc) and len(tried) < self._retries:
                    tried.add(lease.node.name)
                    log.info(
                        "node failed; trying another",
                        url=request.url,
                        node=lease.node.name,
                        kind=exc.kind,
                        attempt=len(tried),
                    )
                    continue
                raise
            except trio.Cancelled:
                if trio.current_effective_deadline() <= trio.current_time():
                    # The request's total deadline passed on this node: let the
                    # strategy learn that the (node, domain) pair is slow.
                    timeout = FetchTimeout("request deadline passed", kind="total_timeout")
                    self.balancer.release(lease, error=timeout)
                else:
                    self.balancer.abandon(lease)  # shutdown: nothing to learn
                raise
            except BaseException:
                self.balancer.abandon(lease)
                raise
            self.balancer.release(lease, status=response.status)
            response.node = lease.node.name
            response.session_moved = lease.session_moved
            return response
