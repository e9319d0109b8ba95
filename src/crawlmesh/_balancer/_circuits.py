"""The mesh's circuit breakers: one per node, one per (node, domain) pair.

Two questions, two kinds of breaker (see :mod:`crawlmesh._resilience`):

* **Node breakers** are fed by the node's own faults (unreachable,
  overloaded, a refusing proxy, a crawlmesh node's error codes). An open one
  takes the node out of every pool, so the balancer routes by the region
  fallback order; a half-open one is back in the pools but admits only
  ``half_open_probes`` requests at a time.
* **Pair breakers** are fed by what the target did through that node:
  timeouts, refused or broken connections, 5xx answers, and bans (block
  pages, 403 storms). An open pair takes the node off that one domain, so a
  proxy banned by one site keeps serving the others.

Outcomes that say nothing about a breaker leave it alone: a node fault says
nothing about the target, a 429 is the throttle's business (it asks for a
slower rate, not another egress), and a body too large or badly encoded is
the page's problem, not the target's health.

Selection stays O(1) while nothing is wrong: the balancer asks
:meth:`Circuits.trouble_free` first, and only domains with a breaker that is
not closed pay for a scan of their candidates.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import cast

import structlog

from .._resilience import Ban, BanRules, Breaker, BreakerBoard, BreakerConfig, Permit, Transition
from .._util._log import request_keys

__all__ = ["SHARED", "TARGET_FAILURE_STATUSES", "Circuits", "Permits"]

log = structlog.get_logger("crawlmesh.balancer")

TARGET_FAILURE_STATUSES = frozenset({500, 502, 503, 504})
"""Target statuses that count against a (node, domain) breaker."""


# The reason of a breaker opened because another worker's did.
SHARED = "shared"


class Permits:
    """What one request holds from its node's breaker and its pair's.

    A closed breaker needs no permit (it admits everything, and an outcome
    reported without one counts only while it is still closed), so the
    common case allocates none: ``node`` and ``pair`` are set only for a
    breaker that was open or half-open when the request was admitted.
    """

    __slots__ = ("domain", "name", "node", "pair")

    def __init__(self, name: str, domain: str, node: Permit | None, pair: Permit | None) -> None:
        self.name = name
        self.domain = domain
        self.node = node
        self.pair = pair

    def release(self) -> None:
        """Give the permits back without an outcome (a cancelled request)."""
        if self.node is not None:
            self.node.release()
        if self.pair is not None:
            self.pair.release()


class _NodeBreakers:
    """The node breakers: one per node name, kept for the whole crawl (a
    mesh is small, so nothing needs forgetting, and a lookup is one dict
    access rather than a :class:`BreakerBoard`'s LRU upkeep)."""

    __slots__ = ("_breakers", "_config", "_on_transition")

    def __init__(self, config: BreakerConfig, on_transition: Callable[[Transition], None]) -> None:
        self._config = config
        self._on_transition = on_transition
        self._breakers: dict[str, Breaker] = {}

    def get(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = Breaker(
                self._config, key=name, on_transition=self._on_transition
            )
        return breaker

    def peek(self, name: str) -> Breaker | None:
        return self._breakers.get(name)


class Circuits:
    """Breakers per node and per (node, domain), as the balancer uses them.

    Args:
        config: the thresholds of every breaker.
        bans: what makes a response a ban (None: no ban detection).
        on_change: called after any breaker changes state, with its scope
            ("node" or "pair") and the transition; must not raise.
    """

    def __init__(
        self,
        config: BreakerConfig | None = None,
        bans: BanRules | None = None,
        *,
        on_change: Callable[[str, Transition], None] | None = None,
    ) -> None:
        self.config = config if config is not None else BreakerConfig()
        self.bans = bans
        self._on_change = on_change
        self.nodes = _NodeBreakers(self.config, self._node_transition)
        self.pairs: BreakerBoard[tuple[str, str]] = BreakerBoard(
            self.config, on_transition=self._pair_transition
        )
        # Node breakers that are not closed, and their earliest half-open time.
        self._troubled_nodes: set[str] = set()
        self._next_half_open = math.inf
        # domain -> nodes whose pair breaker for it is not closed.
        self._troubled_pairs: dict[str, set[str]] = {}
        self.version = 0
        """Bumped when a node breaker changes state: pools depend on it."""
        self.transitions: Counter[str] = Counter()
        """Transitions by "scope:new-state", e.g. "pair:open"."""
        self.banned: Counter[str] = Counter()
        """Bans detected, by node."""
        self.node_trips: Counter[str] = Counter()
        """Times a node's breaker opened, by node."""
        self.pair_trips: Counter[str] = Counter()
        """Times a (node, domain) breaker opened, by node."""
        self.domain_trips: Counter[str] = Counter()
        """Times a (node, domain) breaker opened, by domain."""
        # The request whose outcome :meth:`record` is reporting (for the log).
        self._cause: tuple[str, int | None] | None = None

    # -- queries ---------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Apply cool-downs that ended (open -> half-open) for node breakers."""
        if now < self._next_half_open:
            return
        self._next_half_open = math.inf
        for name in list(self._troubled_nodes):
            breaker = self.nodes.peek(name)
            if breaker is None:  # forgotten after a long idle open period
                self._troubled_nodes.discard(name)
                self.version += 1
                continue
            breaker.state(now)  # fires the half-open transition
            at = breaker.half_opens_at
            if at is not None:
                self._next_half_open = min(self._next_half_open, at)

    def node_out(self, name: str) -> bool:
        """The node's breaker is open (not half-open): keep it out of pools.
        Call :meth:`refresh` first."""
        if name not in self._troubled_nodes:
            return False
        breaker = self.nodes.peek(name)
        return breaker is not None and breaker.half_opens_at is not None

    def trouble_free(self, domain: str) -> bool:
        """No node breaker and no pair breaker of ``domain`` is open or half-open."""
        return not self._troubled_nodes and domain not in self._troubled_pairs

    def troubled_count(self, domain: str) -> int:
        """At most how many nodes may refuse ``domain`` now (breakers not
        closed, for the node or for the pair): more candidates than this
        means one admits it."""
        return len(self._troubled_nodes) + len(self._troubled_pairs.get(domain, ()))

    def admits(self, name: str, domain: str, now: float) -> bool:
        """Would a request to ``domain`` through node ``name`` be let through?"""
        return self.admit_at(name, domain, now) <= now

    def admit_at(self, name: str, domain: str, now: float) -> float:
        """The earliest time a request to ``domain`` may go through ``name``
        (``now`` if at once; ``math.inf`` while half-open probes are all
        taken, until one finishes)."""
        at = now
        if name in self._troubled_nodes:
            breaker = self.nodes.peek(name)
            if breaker is None:
                self._troubled_nodes.discard(name)
            else:
                at = breaker.next_admit_at(now)
        pairs = self._troubled_pairs.get(domain)
        if pairs is not None and name in pairs:
            pair = self.pairs.peek((name, domain))
            if pair is None:
                self._forget_pair(name, domain)
            else:
                at = max(at, pair.next_admit_at(now))
        return at

    def blocked_until(self, domain: str, names: Iterable[str], now: float) -> float:
        """When the first of ``names`` may take a request to ``domain``:
        ``now`` if one may at once."""
        first = math.inf
        for name in names:
            at = self.admit_at(name, domain, now)
            if at <= now:
                return now
            first = min(first, at)
        return first

    # -- a request's permits ------------------------------------------------

    def acquire(self, name: str, domain: str, now: float) -> Permits | None:
        """Permits for one request, or None if either breaker refuses now."""
        node = pair = None
        if name in self._troubled_nodes:
            node = self.nodes.get(name).try_acquire(now)
            if node is None:
                return None
        troubled = self._troubled_pairs.get(domain)
        if troubled is not None and name in troubled:
            pair = self.pairs.get((name, domain), now).try_acquire(now)
            if pair is None:
                if node is not None:
                    node.release()
                return None
        return Permits(name, domain, node, pair)

    def record(
        self,
        permits: Permits,
        now: float,
        *,
        node_ok: bool | None,
        pair_ok: bool | None,
        cause: tuple[str, int | None] | None = None,
    ) -> None:
        """Report an outcome; None for a breaker the outcome says nothing to.
        ``cause``: the request's (url, attempt), named if a breaker changes."""
        self._cause = cause
        try:
            self._record(permits, now, node_ok, pair_ok)
        finally:
            self._cause = None

    def _record(
        self, permits: Permits, now: float, node_ok: bool | None, pair_ok: bool | None
    ) -> None:
        node, pair = permits.node, permits.pair
        if node_ok is not None:
            breaker = node.breaker if node is not None else self.nodes.get(permits.name)
            breaker.record(node, node_ok, now)
        elif node is not None:
            node.release()
        if pair_ok is not None:
            if pair is not None:
                pair.breaker.record(pair, pair_ok, now)
            else:
                self.pairs.get((permits.name, permits.domain), now).record(None, pair_ok, now)
        elif pair is not None:
            pair.release()

    def force_open(self, name: str, domain: str | None, now: float, cooldown: float) -> bool:
        """Open the node's breaker (``domain`` None) or the (node, domain)
        pair's for ``cooldown`` seconds: another worker's opened (reason
        ``"shared"``). False if it was open that long already."""
        if domain is None:
            return self.nodes.get(name).force_open(now, cooldown, SHARED)
        return self.pairs.get((name, domain), now).force_open(now, cooldown, SHARED)

    def ban(self, status: int, body: bytes, headers: Mapping[str, str]) -> Ban | None:
        """Whether the response is a ban (see :meth:`BanRules.verdict`)."""
        if self.bans is None:
            return None
        return self.bans.verdict(status, body, headers)

    # -- transitions -------------------------------------------------------

    def _node_transition(self, t: Transition) -> None:
        name = str(t.key)
        if t.new == "closed":
            self._troubled_nodes.discard(name)
        else:
            self._troubled_nodes.add(name)
        if t.new == "open":
            self._next_half_open = min(self._next_half_open, t.at + t.cooldown)
        self.version += 1
        self._log("node", t, name, None)

    def _pair_transition(self, t: Transition) -> None:
        name, domain = cast(tuple[str, str], t.key)
        if t.new == "closed":
            self._forget_pair(name, domain)
        else:
            self._troubled_pairs.setdefault(domain, set()).add(name)
        self._log("pair", t, name, domain)

    def _forget_pair(self, name: str, domain: str) -> None:
        pairs = self._troubled_pairs.get(domain)
        if pairs is not None:
            pairs.discard(name)
            if not pairs:
                del self._troubled_pairs[domain]

    def _log(self, scope: str, t: Transition, node: str, domain: str | None) -> None:
        self.transitions[f"{scope}:{t.new}"] += 1
        # A change caused by a request's outcome names it (and its domain,
        # also for a node's breaker); one caused by time or another worker
        # has url and attempt None.
        url, attempt = self._cause or (None, None)
        keys = request_keys(url, domain, node, attempt)
        if t.new == "open":
            if domain is None:
                self.node_trips[node] += 1
            else:
                self.pair_trips[node] += 1
                self.domain_trips[domain] += 1
            log.warning(
                "circuit breaker opened",
                **keys,
                scope=scope,
                reason=t.reason,
                cooldown=round(t.cooldown, 3),
            )
        else:
            log.info(f"circuit breaker {t.new}", **keys, scope=scope, reason=t.reason)
        if self._on_change is not None:
            self._on_change(scope, t)
