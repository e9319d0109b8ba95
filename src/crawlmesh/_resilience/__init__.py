"""Resilience around the fetch: circuit breakers, retries, ban detection.

Pure building blocks with no I/O: every decision takes the time as ``now``
(``trio.current_time()`` when omitted), so they run in virtual time.

* :class:`Breaker` / :class:`BreakerBoard`: closed → open → half-open
  circuit breakers, one per key (node, or (node, domain)), with growing
  cool-downs and a bounded number of half-open probes held as
  :class:`Permit` objects.
* :class:`RetryPolicy`: which failures to retry and the full-jitter backoff;
  :class:`RetryBudget`: retries capped at a share of requests.
* :class:`BanRules`: whether a response is a block page; a ban is a failure
  for the (node, domain) breaker.
"""

from ._bans import DEFAULT_BODY_PATTERNS, Ban, BanRules
from ._board import BoardStatistics, BreakerBoard
from ._breaker import Breaker
from ._breaker_config import BreakerConfig, BreakerState, BreakerStatistics, Transition
from ._permit import Permit
from ._retry import IDEMPOTENT_METHODS, RetryBudget, RetryBudgetStatistics, RetryPolicy

__all__ = [
    "DEFAULT_BODY_PATTERNS",
    "IDEMPOTENT_METHODS",
    "Ban",
    "BanRules",
    "BoardStatistics",
    "Breaker",
    "BreakerBoard",
    "BreakerConfig",
    "BreakerState",
    "BreakerStatistics",
    "Permit",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryPolicy",
    "Transition",
]
