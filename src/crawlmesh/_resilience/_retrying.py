"""Retries: which failed attempts go again, when, and through which node.

A retried request stays *pending*: it waits here (parked, with its due time)
instead of in the frontier, then re-enters the frontier so politeness and
rate limits apply to it like to any request. The dispatcher releases parked
requests when they fall due and wakes for the earliest one. A retry avoids
the nodes that already failed it, when others are available.

A request every node pushed back (their own 429/503, :class:`NodePushback`)
is held the same way until the first node takes requests again, then sent
again on any node. The target never saw it: the hold uses up no attempt
and no retry budget, and only ``node_pushback_timeout`` bounds it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterator

import msgspec
import structlog
import trio

from .._exceptions import FetchError
from .._request import Request
from .._response import Response
from .._transport import FetchOptions, NodePushback
from .._util._log import request_keys
from . import RetryBudget, RetryPolicy

__all__ = ["Retrier"]

log = structlog.get_logger("crawlmesh.engine")


class _Attempts:
    __slots__ = ("avoid", "count", "held_since")  # count: attempts whose outcome was considered

    def __init__(self) -> None:
        self.count = 0
        self.avoid: frozenset[str] = frozenset()
        self.held_since: float | None = None  # first of the node pushbacks in a row


class Retrier:
    """Decides and schedules retries for the engine.

    Args:
        policy: what is retried and how long to back off.
        rng: for the backoff's jitter.
    """

    def __init__(self, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.budget: RetryBudget = policy.new_budget()
        self._rng = rng or random.Random()
        self._attempts: dict[int, _Attempts] = {}
        self._parked: list[tuple[float, int, str, Request]] = []
        self._seq = itertools.count()
        self.retries = 0
        self.retries_by_node: Counter[str] = Counter()
        """Retries by the node whose attempt failed."""
        self.budget_refusals = 0
        self.pushback_holds = 0
        """Requests held because every node pushed back (also in ``retries``:
        they are sent again, though they use up no attempt)."""

    def options_for(self, request: Request, options: FetchOptions) -> FetchOptions:
        """The fetch options of this attempt (its number and the nodes to
        avoid, on a retry), and the attempt counted against the budget if it
        is a first one."""
        attempts = self._attempts.get(id(request))
        if attempts is None:
            self._attempts[id(request)] = _Attempts()
            self.budget.record_request()
            return options
        return msgspec.structs.replace(
            options, avoid_nodes=attempts.avoid, attempt=attempts.count + 1
        )

    def consider(
        self,
        domain: str,
        request: Request,
        response: Response | None,
        error: FetchError | None,
        retry_after: float | None = None,
    ) -> bool:
        """Park ``request`` for another attempt if it deserves one; True if
        parked (the outcome is then not final).

        ``retry_after`` is the response's Retry-After in seconds, already
        parsed and capped: a retry waits at least that long."""
        attempts = self._attempts.get(id(request))
        if attempts is None:
            return False
        if isinstance(error, NodePushback):
            return self._hold(domain, request, attempts, error)
        attempts.held_since = None
        attempts.count += 1
        status = response.status if response is not None else None
        kind = error.kind if error is not None else None
        if status is not None and status < 400:
            return False
        if not self.policy.should_retry(request.method, attempts.count, status, kind):
            return False
        node = response.node if response is not None else getattr(error, "node", "")
        if not self.budget.try_spend():
            self.budget_refusals += 1
            log.info(
                "retry budget spent; not retrying",
                **request_keys(request.url, domain, node, attempts.count),
                kind=kind,
                status=status,
            )
            return False
        delay = self.policy.backoff(attempts.count, self._rng, retry_after)
        if node:
            attempts.avoid = attempts.avoid | {node}
            self.retries_by_node[node] += 1
        heapq.heappush(
            self._parked, (trio.current_time() + delay, next(self._seq), domain, request)
        )
        self.retries += 1
        # (attempt: the one that failed, through ``node``; the next is attempt + 1.)
        log.info(
            "retrying",
            **request_keys(request.url, domain, node, attempts.count),
            after=round(delay, 3),
            reason=kind or f"HTTP {status}",
        )
        return True

    def _hold(
        self, domain: str, request: Request, attempts: _Attempts, pushback: NodePushback
    ) -> bool:
        """Park a request every node pushed back until the first takes
        requests again (its attempt not counted); False once it has been
        held for ``node_pushback_timeout`` in a row. Whatever the method and
        ``max_attempts``: the node refused it before the target saw it."""
        now = trio.current_time()
        if attempts.held_since is None:
            attempts.held_since = now
        held = now - attempts.held_since
        if held >= self.policy.node_pushback_timeout:
            log.warning(
                "every node pushed back; giving up on the request",
                **request_keys(request.url, domain, pushback.node, attempts.count + 1),
                kind=pushback.kind,
                held=round(held, 3),
            )
            # The errors file's reason says why it ended so.
            pushback.args = (f"{pushback} (every node pushed it back for {held:.0f} s)",)
            return False
        delay = pushback.retry_after or 0.0
        heapq.heappush(self._parked, (now + delay, next(self._seq), domain, request))
        self.pushback_holds += 1
        self.retries += 1  # sent again, as a retry is (but not an attempt)
        log.info(
            "every node pushed back; holding the request",
            **request_keys(request.url, domain, pushback.node, attempts.count + 1),
            after=round(delay, 3),
            reason=pushback.kind,
            held=round(held, 3),
        )
        return True

    def done(self, request: Request) -> int:
        """Forget a request whose outcome is final; returns the attempts
        whose outcome was considered (0: none)."""
        attempts = self._attempts.pop(id(request), None)
        return 0 if attempts is None else attempts.count

    def due(self, now: float) -> Iterator[tuple[str, Request]]:
        """Remove and yield parked requests due by ``now``."""
        parked = self._parked
        while parked and parked[0][0] <= now:
            _, _, domain, request = heapq.heappop(parked)
            yield domain, request

    @property
    def next_due(self) -> float:
        return self._parked[0][0] if self._parked else float("inf")

    def drain(self) -> Iterator[Request]:
        """Remove and yield every parked request (the crawl is ending)."""
        parked, self._parked = self._parked, []
        for _, _, _, request in sorted(parked):
            self._attempts.pop(id(request), None)
            yield request
