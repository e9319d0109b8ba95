"""Selection strategies: which of the candidate nodes carries the next request.

The earlier policies (health, geo, affinity) narrow the mesh to a candidate
list; a strategy picks one node from it. Strategies are told about every
response (``observe``) and about nodes leaving the mesh (``forget``); they keep
their own per-node data keyed by :attr:`NodeState.index` and never mutate the
nodes.

Low layer: imports nothing from the engine, spiders, settings or the CLI.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import trio

from ._types import NodeState

__all__ = [
    "STRATEGIES",
    "LeastConn",
    "PeakEwmaP2C",
    "RoundRobin",
    "SmoothWeighted",
    "Strategy",
    "make_strategy",
]

STRATEGIES: tuple[str, ...] = ("p2c-ewma", "round-robin", "weighted", "least-conn")
"""Valid strategy names; the first is the default."""


class Strategy(Protocol):
    """Picks one node among candidates; the balancer's last policy.

    Every method runs on the event loop and must not block.
    """

    name: ClassVar[str]

    def pick(self, candidates: Sequence[NodeState], domain: str) -> NodeState:
        """Choose the node for a request to ``domain``.

        Args:
            candidates: the nodes allowed for this request; never empty.
            domain: the request's host, for strategies that learn per domain.

        Returns:
            One of ``candidates``.
        """
        ...

    def observe(
        self, node: NodeState, domain: str, latency: float, *, penalty: bool = False
    ) -> None:
        """Record a finished request.

        Args:
            node: the node that carried it.
            domain: the request's host.
            latency: seconds from send to the end of the response (or to the timeout).
            penalty: True for a 429 or 503 from the target, or a timeout.
        """
        ...

    def forget(self, node: NodeState) -> None:
        """Drop what is known about a node that left the mesh."""
        ...


class _Unobservant:
    """For strategies that learn nothing from outcomes."""

    def observe(
        self, node: NodeState, domain: str, latency: float, *, penalty: bool = False
    ) -> None:
        pass

    def forget(self, node: NodeState) -> None:
        pass


class RoundRobin(_Unobservant):
    """Each candidate in turn, ignoring weights and latency.

    A single counter taken modulo the list's length, so a candidate list that
    changes between calls (nodes taken out or restored) never breaks the cycle.
    """

    name: ClassVar[str] = "round-robin"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Sequence[NodeState], domain: str) -> NodeState:
        node = candidates[self._turn % len(candidates)]
        self._turn += 1
        return node


class SmoothWeighted:
    """Smooth weighted round-robin, with NGINX's interleaving.

    Each node carries a running score. On every pick all candidates' scores
    grow by their effective weight, the highest score wins (the first in the
    list on a tie), and the winner pays back the sum of the weights. Weights
    5, 1, 1 give ``a a b a c a a``: heavy nodes are spread out instead of
    served in bursts.

    With a fixed candidate list and integer weights summing to ``W``, every
    window of ``W`` consecutive picks holds exactly ``weight`` picks of each
    node, and no node ever gets a whole pick ahead of its exact share. Only a
    node strictly heavier than every other candidate can be picked twice in a
    row (2, 2, 3 gives ``c a b c c a b c``).
    """

    name: ClassVar[str] = "weighted"

    def __init__(self) -> None:
        self._score: dict[int, float] = {}

    def pick(self, candidates: Sequence[NodeState], domain: str) -> NodeState:
        score = self._score
        total = 0.0
        best = candidates[0]
        best_score = -math.inf
        for node in candidates:
            weight = node.effective_weight
            value = score.get(node.index, 0.0) + weight
            score[node.index] = value
            total += weight
            if value > best_score:
                best, best_score = node, value
        score[best.index] = best_score - total
        return best

    def observe(
        self, node: NodeState, domain: str, latency: float, *, penalty: bool = False
    ) -> None:
        pass

    def forget(self, node: NodeState) -> None:
        self._score.pop(node.index, None)


class LeastConn(_Unobservant):
    """Weighted least connections: the lowest ``(in_flight + 1) / effective_weight``.

    The scan starts one place further on each call, so ties (an idle mesh, equal
    nodes) rotate instead of always landing on the first candidate.
    """

    name: ClassVar[str] = "least-conn"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Sequence[NodeState], domain: str) -> NodeState:
        n = len(candidates)
        start = self._turn % n
        self._turn += 1
        best = candidates[start]
        best_score = (best.in_flight + 1) / best.effective_weight
        for k in range(start + 1, start + n):
            node = candidates[k % n]
            node_score = (node.in_flight + 1) / node.effective_weight
            if node_score < best_score:
                best, best_score = node, node_score
        return best


class _Ewma:
    """A latency estimate and the virtual time of its last sample."""

    __slots__ = ("stamp", "value")

    def __init__(self, value: float, stamp: float) -> None:
        self.value = value
        self.stamp = stamp

    def update(self, sample: float, now: float, tau: float, *, peak: bool) -> None:
        if peak and sample >= self.value:
            # A slowdown shows at once; only recovery is smoothed.
            self.value = sample
        else:
            keep = math.exp((self.stamp - now) / tau) if now > self.stamp else 1.0
            self.value = self.value * keep + sample * (1.0 - keep)
        self.stamp = now

    def read(self, now: float, tau: float) -> float:
        # An estimate nobody refreshes fades towards zero, as in Finagle and
        # Linkerd: a node that once looked slow is retried after a while
        # instead of being shunned for good.
        if now <= self.stamp:
            return self.value
        return self.value * math.exp((self.stamp - now) / tau)


class PeakEwmaP2C:
    """Power of two choices over peak-EWMA latency, per (node, domain).

    Each pick draws two distinct candidates at random and keeps the cheaper,
    where ``cost = latency * (in_flight + 1) / effective_weight``: O(1) in the
    number of candidates, and never the herd that "always the fastest" makes.

    ``latency`` is learnt per (node, domain), because a node can be fast for
    one site and throttled by another:

    * a sample above the estimate replaces it (peak); a lower one is blended
      in with weight ``1 - exp(-dt / tau)``, ``dt`` being the time since the
      previous sample;
    * a penalised sample (429, 503, timeout) counts ``penalty`` times its
      latency, so a throttled (node, domain) looks slow and loses traffic;
    * between samples the estimate fades towards zero with the same ``tau``,
      so a shunned node is tried again (one probe re-arms the peak);
    * an unseen pair borrows the node's estimate over all its domains, then
      the mesh's, then ``default_latency``: new nodes and new domains are tried.

    Node and mesh estimates are plain EWMAs of the unpenalised latency: a 429
    from one site says nothing about the node elsewhere. At most ``max_pairs``
    pairs are kept, the least recently observed going first.
    """

    name: ClassVar[str] = "p2c-ewma"

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        now: Callable[[], float] = trio.current_time,
        tau: float = 10.0,
        penalty: float = 5.0,
        default_latency: float = 0.1,
        max_pairs: int = 100_000,
    ) -> None:
        """Create an empty strategy.

        Args:
            rng: the source of the random draws (seed it for reproducible tests).
            now: the clock, in seconds; virtual time under ``MockClock``.
            tau: time constant of the averaging and of the fading, in seconds.
            penalty: factor applied to penalised samples.
            default_latency: the estimate, in seconds, before any sample at all.
            max_pairs: bound on the (node, domain) estimates kept.

        Raises:
            ValueError: a parameter out of range.
        """
        if tau <= 0 or penalty < 1 or default_latency <= 0 or max_pairs < 1:
            raise ValueError(
                "p2c-ewma needs tau > 0, penalty >= 1, default_latency > 0, max_pairs >= 1"
            )
        self._rng = rng if rng is not None else random.Random()
        self._now = now
        self._tau = tau
        self._penalty = penalty
        self._default = default_latency
        self._max_pairs = max_pairs
        self._pairs: OrderedDict[tuple[int, int, str], _Ewma] = OrderedDict()
        # Bumped by forget(): a node's older pairs become unreachable at once
        # and age out of the LRU, instead of a scan of every pair.
        self._generation: dict[int, int] = {}
        self._nodes: dict[int, _Ewma] = {}
        self._mesh: _Ewma | None = None

    def pick(self, candidates: Sequence[NodeState], domain: str) -> NodeState:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        draw = self._rng.random
        # Two distinct positions, uniformly: draw the second from n - 1 slots
        # and step over the first.
        i = int(draw() * n)
        j = int(draw() * (n - 1))
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        now = self._now()
        return a if self._cost(a, domain, now) <= self._cost(b, domain, now) else b

    def observe(
        self, node: NodeState, domain: str, latency: float, *, penalty: bool = False
    ) -> None:
        now = self._now()
        tau = self._tau
        key = (node.index, self._generation.get(node.index, 0), domain)
        sample = latency * self._penalty if penalty else latency
        pair = self._pairs.get(key)
        if pair is None:
            self._pairs[key] = _Ewma(sample, now)
            if len(self._pairs) > self._max_pairs:
                self._pairs.popitem(last=False)
        else:
            pair.update(sample, now, tau, peak=True)
            self._pairs.move_to_end(key)
        node_ewma = self._nodes.get(node.index)
        if node_ewma is None:
            self._nodes[node.index] = _Ewma(latency, now)
        else:
            node_ewma.update(latency, now, tau, peak=False)
        if self._mesh is None:
            self._mesh = _Ewma(latency, now)
        else:
            self._mesh.update(latency, now, tau, peak=False)

    def forget(self, node: NodeState) -> None:
        # O(1): scanning every (node, domain) pair here blocked the event loop
        # for seconds when a reload changed a large mesh.
        self._nodes.pop(node.index, None)
        self._generation[node.index] = self._generation.get(node.index, 0) + 1

    def estimate(self, node: NodeState, domain: str) -> float:
        """The latency, in seconds, the strategy currently expects of ``node`` for ``domain``."""
        return self._latency(node, domain, self._now())

    def _latency(self, node: NodeState, domain: str, now: float) -> float:
        key = (node.index, self._generation.get(node.index, 0), domain)
        known = self._pairs.get(key) or self._nodes.get(node.index) or self._mesh
        return self._default if known is None else known.read(now, self._tau)

    def _cost(self, node: NodeState, domain: str, now: float) -> float:
        return self._latency(node, domain, now) * (node.in_flight + 1) / node.effective_weight


def make_strategy(
    name: str,
    *,
    rng: random.Random | None = None,
    now: Callable[[], float] = trio.current_time,
) -> Strategy:
    """Create the strategy called ``name``.

    Args:
        name: one of :data:`STRATEGIES`.
        rng: random source for ``p2c-ewma`` (ignored by the others).
        now: clock for ``p2c-ewma`` (ignored by the others).

    Returns:
        A fresh strategy with no history.

    Raises:
        ValueError: ``name`` is not a known strategy; the message lists the valid ones.
    """
    if name == PeakEwmaP2C.name:
        return PeakEwmaP2C(rng=rng, now=now)
    if name == RoundRobin.name:
        return RoundRobin()
    if name == SmoothWeighted.name:
        return SmoothWeighted()
    if name == LeastConn.name:
        return LeastConn()
    raise ValueError(f"unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
