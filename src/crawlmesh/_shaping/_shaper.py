"""The shaper: per-domain rate limits as the dispatcher sees them.

Limits are configured per glob (``[rates]`` in the settings) and keyed on the
registered domain, so ``a.shop.co.uk`` and ``b.shop.co.uk`` share one
budget. A request whose domain is over its rate is not dropped and does not
block other domains: the dispatcher asks :meth:`Shaper.wait` while scanning
the frontier, skips that domain, and wakes when the first wait ends.

Rules with ``per_node = true`` apply to each (node, domain) pair instead: the
dispatcher's shaper ignores them, and the balancer keeps its own shaper
(``per_node=True``) keyed on (node, domain), which only admits nodes whose
pair is under the rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._domains import registered_domain
from ._gcra import GcraLimiter
from ._rules import RateRule, RateRules, Rule

__all__ = ["Shaper"]


class _Target:
    __slots__ = ("key", "limiter", "rule")

    def __init__(self, rule: Rule | None, limiter: GcraLimiter[Any] | None, key: str) -> None:
        self.rule = rule
        self.limiter = limiter
        self.key = key


class Shaper:
    """Rate limits per registered domain, from glob rules.

    Args:
        rules: glob -> :class:`RateRule` (or its fields as a mapping).
        per_node: apply only the ``per_node`` rules' rates, keyed on
            (node, domain) (the balancer's shaper); else only the others'
            (the dispatcher's). Concurrency caps are the dispatcher's.

    Raises:
        ValueError: a bad glob or rule, naming the glob.
    """

    def __init__(
        self, rules: Mapping[str, RateRule | Mapping[str, Any]], *, per_node: bool = False
    ) -> None:
        self._rules = RateRules(rules)
        self._per_node = per_node
        self._limiters: dict[str, GcraLimiter[Any]] = {}
        self._targets: dict[str, _Target] = {}

    @property
    def active(self) -> bool:
        """Whether any rule's rate is this shaper's to apply."""
        return any(r.rate is not None and r.per_node == self._per_node for r in self._rules)

    def _target(self, host: str) -> _Target:
        target = self._targets.get(host)
        if target is None:
            rule = self._rules.for_domain(host)
            limiter = None
            if rule is not None and rule.rate is not None and rule.per_node == self._per_node:
                limiter = self._limiters.get(rule.glob)
                if limiter is None:
                    limiter = self._limiters[rule.glob] = GcraLimiter(rule.rate, rule.burst)
            if len(self._targets) > 100_000:
                self._targets.clear()
            target = self._targets[host] = _Target(rule, limiter, registered_domain(host))
        return target

    def concurrency(self, host: str) -> int | None:
        """The rule's cap on requests in flight to ``host``, if it sets one."""
        rule = self._target(host).rule
        return None if rule is None else rule.concurrency

    def wait(self, host: str, now: float) -> float:
        """Seconds before a request to ``host`` may start (0: now)."""
        target = self._target(host)
        return 0.0 if target.limiter is None else target.limiter.would_wait(target.key, now)

    def reserve(self, host: str, now: float) -> None:
        """Take the slot :meth:`wait` said was free."""
        target = self._target(host)
        if target.limiter is not None:
            target.limiter.reserve(target.key, now)

    def rate_of(self, host: str) -> tuple[str, float, int] | None:
        """The key (the registered domain), rate and burst this shaper
        applies to ``host``, if any: what a shared limiter needs."""
        target = self._target(host)
        rule = target.rule
        if target.limiter is None or rule is None or rule.rate is None:
            return None
        return target.key, rule.rate, rule.burst

    def pause(self, host: str, until: float) -> None:
        """Start nothing for ``host``'s domain before ``until`` (Retry-After);
        then resume at the rule's rate."""
        target = self._target(host)
        if target.limiter is not None:
            target.limiter.pause_until(target.key, until)

    # -- per (node, domain) -------------------------------------------------

    def limits(self, host: str) -> bool:
        """Whether ``host`` has a rate this shaper applies."""
        return self._target(host).limiter is not None

    def node_wait(self, node: str, host: str, now: float) -> float:
        """Seconds before a request to ``host`` may go through ``node``."""
        target = self._target(host)
        if target.limiter is None:
            return 0.0
        return target.limiter.would_wait((node, target.key), now)

    def node_reserve(self, node: str, host: str, now: float) -> None:
        target = self._target(host)
        if target.limiter is not None:
            target.limiter.reserve((node, target.key), now)

    def node_pause(self, node: str, host: str, until: float) -> None:
        """Start nothing for ``host`` through ``node`` before ``until``."""
        target = self._target(host)
        if target.limiter is not None:
            target.limiter.pause_until((node, target.key), until)
