"""``crawl --metrics HOST:PORT``: the crawl's counters as Prometheus
exposition, read from the engine at scrape time (nothing is added to the
request path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["CrawlCollector", "serve_app", "serve_metrics"]

_BREAKER_STATES = ("closed", "half-open", "open")
_NODE_STATES = ("up", "down", "ramping", "fallback")


class CrawlCollector:
    """A prometheus-client collector over one engine's live counters."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        stats = engine.stats

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"crawlmesh_{name}", doc, value=value)

        yield counter("pages", "Responses received (any status).", stats.pages)
        yield counter("items", "Items written.", stats.items)
        yield counter("requests_scheduled", "Requests accepted into the frontier.", stats.scheduled)
        yield counter("response_bytes", "Response body bytes received.", stats.bytes)
        yield counter("retries", "Attempts beyond the first.", engine.retries)
        yield counter(
            "retry_budget_refusals",
            "Retries refused because the retry budget was spent.",
            engine.retry_budget_refusals,
        )
        yield counter("retry_after_pauses", "Times a Retry-After paused a domain.", stats.pauses)
        yield counter(
            "throttle_decreases",
            "Times a domain's concurrency was lowered by pushback (AIMD).",
            stats.throttle_decreases,
        )
        by_status = CounterMetricFamily(
            "crawlmesh_responses", "Responses by HTTP status.", labels=["status"]
        )
        for status, n in sorted(stats.status.items()):
            by_status.add_metric([str(status)], n)
        yield by_status
        errors = CounterMetricFamily(
            "crawlmesh_errors", "Requests that finally failed, by kind.", labels=["kind"]
        )
        for kind, n in sorted(stats.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        filtered = CounterMetricFamily(
            "crawlmesh_filtered", "Requests not fetched by policy, by reason.", labels=["reason"]
        )
        for reason, n in sorted(stats.filtered.items()):
            filtered.add_metric([reason], n)
        yield filtered
        frontier, in_flight = engine.backlog()
        yield GaugeMetricFamily(
            "crawlmesh_frontier_requests", "Requests queued in this process.", value=frontier
        )
        yield GaugeMetricFamily(
            "crawlmesh_in_flight_requests", "Requests being fetched.", value=in_flight
        )
        balancer = engine.balancer
        if balancer is None:
            return
        requests = CounterMetricFamily(
            "crawlmesh_node_requests", "Requests sent through each node.", labels=["node"]
        )
        node_errors = CounterMetricFamily(
            "crawlmesh_node_errors",
            "Failed fetches through each node, by kind.",
            labels=["node", "kind"],
        )
        up = GaugeMetricFamily(
            "crawlmesh_node_state", "1 for the node's health state.", labels=["node", "state"]
        )
        breaker = GaugeMetricFamily(
            "crawlmesh_node_breaker_state",
            "1 for the state of the node's circuit breaker.",
            labels=["node", "state"],
        )
        node_in_flight = GaugeMetricFamily(
            "crawlmesh_node_in_flight_requests", "Requests in flight per node.", labels=["node"]
        )
        for node in balancer.node_stats():
            requests.add_metric([node.name], node.requests)
            for kind, n in sorted(node.errors.items()):
                node_errors.add_metric([node.name, kind], n)
            for state in _NODE_STATES:
                up.add_metric([node.name, state], float(node.state == state))
            for state in _BREAKER_STATES:
                breaker.add_metric([node.name, state], float(node.breaker == state))
            node_in_flight.add_metric([node.name], node.in_flight)
        yield from (requests, node_errors, up, breaker, node_in_flight)


async def serve_metrics(
    engine: Engine,
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
