"""Counters kept on the request path for the Prometheus metrics.

The crawl does a thousand or more pages a second on one core, so what is
counted per request costs a few hundred nanoseconds: plain ``int`` and
``float`` additions into lists and dicts made in advance (no lock, no object
per request). The metrics collector (:mod:`crawlmesh._observe._metrics`) reads them
at scrape time.

* :class:`DurationHistogram`: cumulative buckets, a sum and a count, as a
  Prometheus histogram wants them.
* :class:`DomainLabels`: a bounded set of ``domain`` label values, so a
  crawl of a million hosts does not make a million series.
* :class:`NodeTally`: one node's attempts by domain label and status class,
  and their durations.
* :class:`RateWaits`: how often and how long requests waited for a rate
  limit, by reason.

This is a low layer: it imports nothing from the stages.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = [
    "DURATION_BUCKETS",
    "OTHER",
    "RATE_WAIT_REASONS",
    "STATUS_CLASSES",
    "DomainLabels",
    "DurationHistogram",
    "NodeTally",
    "RateWaits",
]

DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""Upper bounds in seconds: loopback fetches take milliseconds, remote ones up
to the attempt deadline (``timeouts.total``, 120 s by default). The node
service's histogram has the same buckets, so the two compare bucket by bucket."""

OTHER = "other"
"""The ``domain`` label of every domain without a label of its own."""

STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx", "error")
"""The ``status_class`` label by index: ``status // 100``, then ``error`` for
an attempt that got no response."""
_ERROR = len(STATUS_CLASSES) - 1

RATE_WAIT_REASONS = ("delay", "pause", "rate", "node_rate", "shared")
"""Why a request waited (see :class:`RateWaits`)."""

# Domains counted towards a label of their own, at most; the oldest counts
# are dropped beyond it (a broad crawl's long tail never gets a label).
_MAX_CANDIDATES = 10_000


class DurationHistogram:
    """Observations counted into fixed buckets, Prometheus style.

    Args:
        bounds: the buckets' upper bounds, ascending (``+Inf`` is implied).
    """

    __slots__ = ("_bounds", "_counts", "sum")

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"bucket bounds must ascend without repeats: {bounds!r}")
        self._bounds = tuple(bounds)
        # Not cumulative: one slot per bucket, the last one for +Inf.
        self._counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to it (le, "<=").
        self._counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ``inf`` last."""
        out = []
        running = 0
        for bound, n in zip((*self._bounds, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class DomainLabels:
    """The ``domain`` label of a request's host, from a bounded set.

    A host gets a label of its own (its name) once it has had
    ``promote_after`` requests, for the first ``limit`` hosts to get there;
    every other host, and every host's requests before that, is ``other``.
    A label, once given, is kept for the whole crawl, so each series only
    ever grows, as a Prometheus counter must.

    Args:
        limit: hosts with a label of their own, at most (0: none).
        promote_after: requests a host needs before it gets its label.
    """

    __slots__ = ("_candidates", "_full", "_labels", "_limit", "_promote_after")

    def __init__(self, limit: int, promote_after: int = 10) -> None:
        if limit < 0 or promote_after < 1:
            raise ValueError(f"need limit >= 0 and promote_after >= 1: {limit}, {promote_after}")
        self._limit = limit
        self._promote_after = promote_after
        self._labels: dict[str, str] = {}
        self._candidates: dict[str, int] = {}
        self._full = limit == 0

    def label(self, host: str) -> str:
        label = self._labels.get(host)
        if label is not None:
            return label
        if self._full:
            return OTHER
        candidates = self._candidates
        seen = candidates.get(host, 0) + 1
        if seen < self._promote_after:
            if seen == 1 and len(candidates) >= _MAX_CANDIDATES:
                candidates.clear()
            candidates[host] = seen
            return OTHER
        self._labels[host] = host
        candidates.pop(host, None)
        if len(self._labels) >= self._limit:
            self._full = True
            candidates.clear()
        return host

    @property
    def labelled(self) -> frozenset[str]:
        """The hosts with a label of their own."""
        return frozenset(self._labels)


class NodeTally:
    """One node's finished attempts: counts by domain label and status class,
    and their durations."""

    __slots__ = ("_outcomes", "duration")

    def __init__(self) -> None:
        # domain label -> counts by STATUS_CLASSES index
        self._outcomes: dict[str, list[int]] = {}
        self.duration = DurationHistogram()

    def record(self, label: str, status: int | None, seconds: float) -> None:
        """Count one attempt: its domain label, its status (None: no
        response) and how long it took."""
        counts = self._outcomes.get(label)
        if counts is None:
            counts = self._outcomes[label] = [0] * len(STATUS_CLASSES)
        if status is None:
            index = _ERROR
        else:
            index = status // 100
            if index >= _ERROR:  # (three digits in HTTP; a lenient parser may pass more)
                index = _ERROR - 1
        counts[index] += 1
        self.duration.observe(seconds)

    def outcomes(self) -> list[tuple[str, str, int]]:
        """(domain label, status class, attempts) for every count above 0."""
        return [
            (label, STATUS_CLASSES[i], n)
            for label, counts in sorted(self._outcomes.items())
            for i, n in enumerate(counts)
            if n
        ]


class RateWaits:
    """How often and how long requests waited for a rate limit, by reason.

    Reasons (:data:`RATE_WAIT_REASONS`):

    * ``delay``: a domain's ``download_delay`` or robots.txt Crawl-delay;
    * ``pause``: a domain paused by a 429/503 (its Retry-After, or
      ``throttle.pushback_pause``), also when another worker saw it;
    * ``rate``: a domain's rate rule (``[rates]``);
    * ``node_rate``: a ``per_node`` rate rule, every node at its rate for
      the domain (or a session's node);
    * ``shared``: the crawl-wide rate shared by every worker (Redis).
    """

    __slots__ = ("count", "seconds")

    def __init__(self) -> None:
        self.count = dict.fromkeys(RATE_WAIT_REASONS, 0)
        self.seconds = dict.fromkeys(RATE_WAIT_REASONS, 0.0)

    def add(self, reason: str, seconds: float) -> None:
        """Count one wait that lasted ``seconds``."""
        self.count[reason] += 1
        self.seconds[reason] += seconds
