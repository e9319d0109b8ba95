"""The rate-shaping stage: when each request may start, per domain.

Pure building blocks, each usable and testable alone; times are passed in
(or read from ``trio.current_time()``) so everything runs in virtual time:

- :func:`registered_domain`: the key limits apply to (eTLD+1, offline PSL).
- :class:`RateRules`: glob -> :class:`Rule` (rate, burst, concurrency,
  per-node), the most specific glob winning.
- :class:`GcraLimiter`: a rate with bursts per key (NGINX ``limit_req`` with
  ``burst``/``nodelay`` semantics) that queues instead of refusing.
- :class:`AimdController`: a domain's concurrency, adapted to its latency and
  its pushbacks.
- :func:`parse_retry_after`: how long a 429 or 503 asks us to pause.

Assembled: :class:`Politeness` (per-domain slots, delays and pauses) and
:class:`Shaper` (the rules' rates per registered domain, or per (node,
domain) for the balancer's ``per_node`` rules).
"""

from __future__ import annotations

from ._aimd import AimdController as AimdController
from ._domains import normalize_host as normalize_host
from ._domains import registered_domain as registered_domain
from ._gcra import GcraLimiter as GcraLimiter
from ._gcra import parse_rate as parse_rate
from ._politeness import Politeness as Politeness
from ._retry_after import parse_retry_after as parse_retry_after
from ._rules import RateRule as RateRule
from ._rules import RateRules as RateRules
from ._rules import Rule as Rule
from ._shaper import Shaper as Shaper

__all__ = [
    "AimdController",
    "GcraLimiter",
    "Politeness",
    "RateRule",
    "RateRules",
    "Rule",
    "Shaper",
    "normalize_host",
    "parse_rate",
    "parse_retry_after",
    "registered_domain",
]
