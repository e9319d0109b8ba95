"""Learning: what each outcome teaches the breakers, the strategy and the
node's figures, and which breakers are shared with the other workers.

A ban verdict (:meth:`Learner.ban`) comes from the breakers' ban
rules; :func:`verdicts` turns an outcome into what the node's breaker and
the (node, domain) pair's breaker are told.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import cast

import trio

from .._exceptions import FetchError
from .._observe import TARGET_FAILURE_KINDS
from .._resilience import Ban, Transition
from .._state import MeshShare
from .._transport import NodePushback, is_node_fault, is_node_pushback
from .._util._tally import DomainLabels
from ._circuits import SHARED, TARGET_FAILURE_STATUSES, Circuits
from ._members import DIRECT_FALLBACK, Members
from ._pushback import DEFAULT_HOLD, NodePushbacks
from ._slots import Lease
from ._strategies import Strategy

__all__ = ["Learner", "verdicts"]

# Statuses from a target that say "slow down": a latency penalty for the
# (node, domain) pair, so p2c-ewma sends that domain elsewhere.
_PUSHBACK = frozenset({429, 503})
# A node fault is learnt as this much latency (at least): a node that refuses
# at once must not look like the fastest one to p2c-ewma.
_FAULT_LATENCY = 5.0


def verdicts(
    status: int | None, error: FetchError | None, ban: Ban | None
) -> tuple[bool | None, bool | None]:
    """What an outcome says to the node's breaker and to the pair's (None:
    nothing; see :mod:`._circuits`)."""
    if error is not None:
        if is_node_pushback(error):
            # The node is up and asked to be left alone for a while, as a
            # target's 429 asks: its pause does that, not its breaker.
            return None, None
        if is_node_fault(error):
            return False, None
        if error.kind == "total_timeout":
            # The attempt's own deadline: a node that hangs and a target that
            # drips look the same, so the node's breaker is told nothing
            # (not a success) and the pair's counts the failure.
            return None, False
        return True, (False if error.kind in TARGET_FAILURE_KINDS else None)
    if ban is not None or status in TARGET_FAILURE_STATUSES:
        return True, False
    return True, (None if status in _PUSHBACK else True)


class Learner:
    """Learns from outcomes, and shares breaker openings.

    Args:
        members: the mesh.
        strategy: told each outcome's latency.
        pushbacks: where a node's own pushback is held.
        wake: wakes waiters for a slot (a breaker closed or half-opened).
        domain_labels: domains with a label of their own in the metrics.
        rng: randomness for latency sampling.
    """

    __slots__ = (
        "_labels",
        "_members",
        "_pushbacks",
        "_rng",
        "_strategy",
        "_wake",
        "circuits",
        "share",
    )

    def __init__(
        self,
        members: Members,
        strategy: Strategy,
        pushbacks: NodePushbacks,
        wake: Callable[[], object],
        *,
        domain_labels: int,
        rng: random.Random,
    ) -> None:
        self._members = members
        self._strategy = strategy
        self._pushbacks = pushbacks
        self._wake = wake
        self._labels = DomainLabels(domain_labels)
        self._rng = rng
        self.circuits: Circuits | None = None  # set once built, with our on_change
        self.share: MeshShare | None = None  # a distributed crawl's (None: ours alone)

    def ban(self, status: int, body: bytes, headers: Mapping[str, str]) -> Ban | None:
        circuits = self.circuits
        return None if circuits is None else circuits.ban(status, body, headers)

    def learn(
        self,
        lease: Lease,
        status: int | None,
        error: FetchError | None,
        ban: Ban | None,
        cause: tuple[str, int | None] | None,
    ) -> None:
        """See :meth:`Balancer.release` (the slot is already back)."""
        state = lease.node
        now = trio.current_time()
        circuits = self.circuits
        if lease.permits is not None:
            assert circuits is not None
            node_ok, pair_ok = verdicts(status, error, ban)
            circuits.record(lease.permits, now, node_ok=node_ok, pair_ok=pair_ok, cause=cause)
        node = self._members.named(state.name)
        if node is None or node.state is not state:
            return  # a node removed by a reload: nothing left to learn for
        latency = now - lease.started
        node.tally.record(self._labels.label(lease.domain), status, latency)
        if ban is not None and circuits is not None:
            circuits.banned[state.name] += 1
        if error is not None:
            node.errors[error.kind] += 1
            if is_node_pushback(error):
                hold = error.retry_after if isinstance(error, NodePushback) else None
                self._pushbacks.push_back(
                    state.name, now + (DEFAULT_HOLD if hold is None else hold)
                )
            fault = is_node_fault(error)
            if fault:
                latency = max(latency, _FAULT_LATENCY)
            slow = fault or error.is_timeout
            self._strategy.observe(state, lease.domain, latency, penalty=slow)
            return
        node.sample(latency, self._rng)
        penalty = status in _PUSHBACK or ban is not None
        self._strategy.observe(state, lease.domain, latency, penalty=penalty)

    # -- breakers shared with other workers -----------------------------------

    def breaker_changed(self, scope: str, transition: Transition) -> None:
        share = self.share
        if share is not None and transition.new == "open" and transition.reason != SHARED:
            if scope == "node":
                share.breaker_opened(str(transition.key), None, transition.cooldown)
            else:
                name, domain = cast(tuple[str, str], transition.key)
                share.breaker_opened(name, domain, transition.cooldown)
        if scope == "node" and transition.new == "closed":
            node = self._members.nodes.get(str(transition.key))
            if node is not None:
                self._members.health.ramp(node.state)  # back at full weight gradually
        # A closed or half-open breaker may let waiting acquirers through.
        self._wake()

    def node_down(self, name: str) -> None:
        """Our checks find ``name`` down: every worker takes it out until
        two check intervals from now (renewed by each failed check)."""
        if self.share is not None:
            self.share.breaker_opened(name, None, 2 * self._members.health.config.interval)

    def apply_shared_breaker(self, node: str, domain: str | None, seconds: float) -> None:
        """Another worker's breaker opened: open ours for as long."""
        circuits = self.circuits
        if circuits is not None and (node in self._members.nodes or node == DIRECT_FALLBACK):
            circuits.force_open(node, domain, trio.current_time(), seconds)
