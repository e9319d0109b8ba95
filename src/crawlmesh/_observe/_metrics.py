"""``crawl --metrics HOST:PORT``: the crawl's counters as Prometheus
exposition, read from the engine at scrape time.

What the request path adds is a few plain counters (:mod:`crawlmesh._util._tally`):
per node, attempts by domain and status class and a duration histogram kept
in lists of ints; rate-limit waits, counted where a wait ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, get_args

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._resilience import RetryBudgetStatistics
from .._util._tally import RateWaits
from ._nodes import TARGET_FAILURE_KINDS, NodeHealth
from ._sources import MeshSource
from ._stats import StatsCollector

__all__ = ["CrawlCollector", "MetricsSource", "serve_app", "serve_metrics"]

_BREAKER_STATES = ("closed", "half-open", "open")
# A node's health, and "fallback" for the direct fallback node.
_NODE_STATES = (*get_args(NodeHealth), "fallback")
# Series exported at 0 from the start, so that rate() and increase() see a
# first event (a series born at 1 has no earlier sample to count from):
# breaker transitions by (scope, state), and each node's error kinds that
# any attempt can end with, plus a crawlmesh node's own faults.
_BREAKER_SCOPES = ("node", "pair")
_ATTEMPT_ERROR_KINDS = tuple(sorted(TARGET_FAILURE_KINDS))
_NODE_SERVICE_ERROR_KINDS = ("node_draining", "node_error", "node_overloaded", "node_rate_limited")


class MetricsSource(Protocol):
    """What the metrics read of a running crawl (an :class:`~crawlmesh.Engine`)."""

    @property
    def stats(self) -> StatsCollector: ...

    @property
    def balancer(self) -> MeshSource | None: ...

    @property
    def rate_waits(self) -> RateWaits: ...

    @property
    def retries(self) -> int: ...

    @property
    def retry_budget_refusals(self) -> int: ...

    def retry_budget(self) -> RetryBudgetStatistics: ...

    def backlog(self) -> tuple[int, int]:
        """(requests queued, requests in flight)."""
        ...


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"crawlmesh_{name}", doc, value=value)


def _by(name: str, doc: str, label: str, counts: Mapping[Any, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(f"crawlmesh_{name}", doc, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([str(key)], n)
    return family


def _le(bound: float) -> str:
    """A bucket's ``le`` label as prometheus-client writes it ("0.005", "1.0", "+Inf")."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class CrawlCollector:
    """A prometheus-client collector over one engine's live counters."""

    def __init__(self, engine: MetricsSource) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        stats = engine.stats
        yield _counter("pages", "Responses received (any status).", stats.pages)
        yield _counter("items", "Items written.", stats.items)
        yield _counter(
            "requests_scheduled", "Requests accepted into the frontier.", stats.scheduled
        )
        yield _counter("response_bytes", "Response body bytes received.", stats.bytes)
        yield _by("responses", "Responses by HTTP status.", "status", stats.status)
        yield _by("errors", "Requests that finally failed, by kind.", "kind", stats.errors)
        yield _by(
            "filtered", "Requests not fetched by policy, by reason.", "reason", stats.filtered
        )
        frontier, in_flight = engine.backlog()
        yield GaugeMetricFamily(
            "crawlmesh_frontier_requests", "Requests queued in this process.", value=frontier
        )
        yield GaugeMetricFamily(
            "crawlmesh_in_flight_requests", "Requests being fetched.", value=in_flight
        )
        yield from _retries(engine)
        yield from _rate_limits(engine)
        if engine.balancer is not None:
            yield from _mesh(engine.balancer)


def _retries(engine: MetricsSource) -> Iterator[Metric]:
    yield _counter("retries", "Attempts beyond the first.", engine.retries)
    yield _counter(
        "retry_budget_refusals",
        "Retries refused because the retry budget was spent.",
        engine.retry_budget_refusals,
    )
    budget = engine.retry_budget()
    yield GaugeMetricFamily(
        "crawlmesh_retry_budget_available",
        "Retries the retry budget would allow now (retry.budget_ratio of the window's "
        "first attempts, plus retry.budget_min_retries_per_s over the window, less its retries).",
        value=budget.available,
    )
    yield GaugeMetricFamily(
        "crawlmesh_retry_budget_window_requests",
        "First attempts within the retry budget's window (retry.budget_window).",
        value=budget.requests,
    )
    yield GaugeMetricFamily(
        "crawlmesh_retry_budget_window_retries",
        "Retries spent within the retry budget's window (retry.budget_window).",
        value=budget.retries,
    )


_WAITS_DOC = (
    "A domain's next request held back for time: by its download_delay or "
    "Crawl-delay (delay), a 429/503 pause (pause), its rate rule (rate), every "
    "node at a per_node rate (node_rate), or the rate shared by every worker "
    "(shared). A dispatcher wait runs from the first scan that finds the domain "
    "held to the end of the hold, and is counted when the next request starts; "
    "a wait for a shared or a session's per-node rate is one sleep before a fetch. "
    "Not counted: waits for a concurrency slot, retry backoff, circuit breakers."
)


def _rate_limits(engine: MetricsSource) -> Iterator[Metric]:
    waits = engine.rate_waits
    yield _by(
        "rate_limit_waits", "Rate-limit waits, by reason. " + _WAITS_DOC, "reason", waits.count
    )
    yield _by(
        "rate_limit_wait_seconds",
        "Seconds spent in rate-limit waits, by reason. " + _WAITS_DOC,
        "reason",
        waits.seconds,
    )
    yield _counter(
        "retry_after_pauses", "Times a Retry-After paused a domain.", engine.stats.pauses
    )
    yield _counter(
        "throttle_decreases",
        "Times a domain's concurrency was lowered by pushback (AIMD).",
        engine.stats.throttle_decreases,
    )
    yield _counter(
        "circuit_holds",
        "Times a domain's requests were held because no node's breaker admitted it.",
        engine.stats.circuit_holds,
    )


def _mesh(balancer: MeshSource) -> Iterator[Metric]:
    """Per node: what the balancer learnt (``crawlmesh_mesh_*``; a ``crawlmesh
    node`` service's own metrics are ``crawlmesh_node_*``)."""
    requests = CounterMetricFamily(
        "crawlmesh_mesh_requests",
        "Attempts through each node that ended, by domain (the busiest by name, "
        "see metrics.domain_labels; the rest other) and status class (error: no response).",
        labels=["node", "domain", "status_class"],
    )
    duration = HistogramMetricFamily(
        "crawlmesh_mesh_request_duration_seconds",
        "Time from taking a node's slot to an attempt's end, any outcome.",
        labels=["node"],
    )
    for name, tally in balancer.tallies():
        for domain, status_class, n in tally.outcomes():
            requests.add_metric([name, domain, status_class], n)
        histogram = tally.duration
        buckets = [(_le(bound), float(n)) for bound, n in histogram.buckets()]
        duration.add_metric([name], buckets, histogram.sum)
    node_errors = CounterMetricFamily(
        "crawlmesh_mesh_errors",
        "Failed attempts through each node, by kind.",
        labels=["node", "kind"],
    )
    bans = CounterMetricFamily(
        "crawlmesh_mesh_bans",
        "Responses through each node that looked like a ban.",
        labels=["node"],
    )
    state = GaugeMetricFamily(
        "crawlmesh_mesh_node_state", "1 for the node's health state.", labels=["node", "state"]
    )
    breaker = GaugeMetricFamily(
        "crawlmesh_mesh_breaker_state",
        "1 for the state of the node's circuit breaker.",
        labels=["node", "state"],
    )
    in_flight = GaugeMetricFamily(
        "crawlmesh_mesh_in_flight_requests", "Requests in flight per node.", labels=["node"]
    )
    for node in balancer.node_stats():
        known = _ATTEMPT_ERROR_KINDS
        if node.kind == "node":
            known += _NODE_SERVICE_ERROR_KINDS
        errors = {**dict.fromkeys(known, 0), **node.errors}
        for kind, n in sorted(errors.items()):
            node_errors.add_metric([node.name, kind], n)
        bans.add_metric([node.name], node.bans)
        for name in _NODE_STATES:
            state.add_metric([node.name, name], float(node.state == name))
        for name in _BREAKER_STATES:
            breaker.add_metric([node.name, name], float(node.breaker == name))
        in_flight.add_metric([node.name], node.in_flight)
    yield from (requests, duration, node_errors, bans, state, breaker, in_flight)
    transitions = CounterMetricFamily(
        "crawlmesh_breaker_transitions",
        "Circuit breaker state changes, by scope (node, or pair: a node and a domain) "
        "and new state.",
        labels=["scope", "state"],
    )
    if balancer.circuits is not None:
        counts = dict.fromkeys(
            (f"{s}:{new}" for s in _BREAKER_SCOPES for new in _BREAKER_STATES), 0
        )
        counts.update(balancer.circuits.transitions)
        for key, n in sorted(counts.items()):
            scope, _, new = key.partition(":")
            transitions.add_metric([scope, new], n)
    yield transitions


async def serve_metrics(
    engine: MetricsSource,
    bind: str,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve GET /metrics for ``engine`` on ``bind`` (HOST:PORT) until cancelled."""
    registry = CollectorRegistry()
    registry.register(CrawlCollector(engine))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[Route("/metrics", metrics)])
    await serve_app(app, bind, task_status=task_status)


async def serve_app(
    app: Starlette,
    bind: str,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bind`` (HOST:PORT; port 0 picks one) with hypercorn,
    quietly, until cancelled; started with the bound URLs."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None
    await serve(app, config, task_status=task_status)  # type: ignore[arg-type]
