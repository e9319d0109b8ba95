"""The balancer as the fetch stage sees it: a transport over the mesh.

Each fetch asks the :class:`Balancer` for a node, sends the request through
that node's transport, and reports the outcome. When the node itself fails
(unreachable, overloaded, a refused proxy), the request is tried on another
node, up to ``node_retries`` times; a failure of the target is final here
(retries of those are the resilience stage's business).

A node that pushes back (its own 429/503 with Retry-After) is left alone
for as long as it asks. When every node tried pushed back, the last
refusal is raised with ``retry_after`` set to when the first node of the
mesh takes requests again: the engine holds the request until then without
counting an attempt.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
import trio

from .._exceptions import Banned, CircuitOpen, FetchError, FetchTimeout
from .._hooks import FetchHooks
from .._request import Request
from .._response import Response
from .._transport import Deadlines, FetchOptions, NodePushback, is_node_fault
from .._util._log import request_keys
from ._balancer import Balancer, session_of
from ._slots import Lease

__all__ = ["BalancedTransport"]

log = structlog.get_logger("crawlmesh.balancer")


class BalancedTransport:
    """A :class:`~crawlmesh.Transport` that fetches through the node mesh.

    Each attempt through a node has its own deadline (``timeouts.total``,
    or the node kind's or domain's), so a node that hangs costs one attempt
    and the request can go elsewhere.

    A response that is a block page (a ban pattern in its body or headers)
    is not handed on: it counts against the (node, domain) breaker and is
    raised as a ``banned`` :class:`~crawlmesh.FetchError`, which the engine
    retries through another node. A bare 403 counts against the breaker
    (a storm of them trips it) but is handed on as the target's answer.

    The fetch hooks (:mod:`crawlmesh._hooks._fetch`) run here, where the
    node is known: ``on_request`` once a node is chosen for an attempt (an
    answer it gives costs the node nothing: its slot is handed back
    unused), ``on_response`` and ``on_error`` once the node's outcome is
    learnt, so what a hook does to an answer never reaches the breakers.

    Args:
        balancer: chooses nodes and learns from outcomes.
        node_retries: other nodes tried after a node fault.
        deadlines: per-attempt deadlines (default: 120 s, no overrides).
        hooks: the fetch hooks (default: none).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        node_retries: int = 2,
        deadlines: Deadlines | None = None,
        hooks: FetchHooks | None = None,
    ) -> None:
        self.balancer = balancer
        self._retries = node_retries
        self._deadlines = deadlines or Deadlines(120.0)
        self.hooks = FetchHooks() if hooks is None else hooks

    async def aclose(self) -> None:
        await self.balancer.aclose()

    async def fetch(self, request: Request, options: FetchOptions) -> Response:
        hooks = self.hooks
        if not hooks.active:
            return await self._fetch(request, options)
        try:
            response = await self._fetch(request, options)
        except (CircuitOpen, NodePushback):
            raise  # not an attempt: the engine holds the request
        except FetchError as error:
            recovered = await hooks.failed(request, error)
            if recovered is None:
                raise
            return recovered
        return await hooks.after(request, response)

    async def _fetch(self, request: Request, options: FetchOptions) -> Response:
        host = urlsplit(request.url).hostname or ""
        if request.session is None:
            session = session_of(request)
            if session is not None:
                # A session given as a header: transports key cookie jars on it.
                request = request.replace(session=session)
        balancer = self.balancer
        tried: set[str] = set()
        cause = (request.url, options.attempt)  # for a breaker's log line
        pushback: NodePushback | None = None  # the last node's refusal
        while True:
            try:
                lease = await balancer.acquire(request, host, options.avoid_nodes | tried)
            except CircuitOpen:
                if pushback is None:
                    raise
                # The others pushed back too, or their breakers are open.
                raise self._held(pushback) from None
            node = lease.node.name
            sent = request
            if self.hooks.active:
                answer = await self._before(lease, request)
                if isinstance(answer, Response):
                    return answer
                sent = answer
            attempt_options, total = self._deadlines.resolve(host, lease.node.spec.kind, options)
            try:
                with trio.move_on_after(total) as attempt:
                    response = await lease.transport.fetch(sent, attempt_options)
                if attempt.cancelled_caught:
                    raise FetchTimeout(
                        f"attempt through node {node} took longer than {total:g} s",
                        request=request,
                        kind="total_timeout",
                    )
            except FetchError as caught:
                exc = caught.with_node(node)  # a retry of the request avoids it
                balancer.release(lease, error=exc, cause=cause)
                if isinstance(exc, NodePushback):
                    pushback = exc
                if is_node_fault(exc) and len(tried) < self._retries:
                    tried.add(node)
                    log.info(
                        "node failed; trying another",
                        **request_keys(request.url, host, node, options.attempt),
                        kind=exc.kind,
                        reason=str(exc),
                        failover=len(tried),
                    )
                    continue
                if pushback is exc:
                    raise self._held(pushback) from None
                raise exc from caught.__cause__
            except BaseException:
                balancer.abandon(lease)  # cancelled (shutdown): nothing to learn
                raise
            ban = balancer.ban(response.status, response.body, response.headers)
            balancer.release(lease, status=response.status, ban=ban, cause=cause)
            if ban is not None and ban.page:
                error = Banned(
                    f"banned through node {node}: {ban.reason}", request=request, node=node
                )
                log.info(
                    "ban detected",
                    **request_keys(request.url, host, node, options.attempt),
                    reason=ban.reason,
                )
                raise error
            return response.via(node, session_moved=lease.session_moved)

    async def _before(self, lease: Lease, request: Request) -> Request | Response:
        """The ``on_request`` hooks of an attempt through ``lease``'s node:
        the request to send, or an answer (then nothing is sent, and the
        node's slot goes back with nothing to learn)."""
        try:
            answer = await self.hooks.before(request, lease.node.name)
        except BaseException:
            self.balancer.abandon(lease)
            raise
        if isinstance(answer, Response):
            self.balancer.abandon(lease)
        return answer

    def _held(self, pushback: NodePushback) -> NodePushback:
        """``pushback``, its ``retry_after`` now the wait for the first node
        of the mesh to take requests again."""
        pushback.retry_after = max(0.0, self.balancer.pushed_back_until() - trio.current_time())
        return pushback
