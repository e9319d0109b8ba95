"""The node's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["NodeMetrics"]

# Loopback fetches take milliseconds, remote ones up to the timeout.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class NodeMetrics:
    """Counters and gauges for one node service.

    Args:
        in_flight: reads the fetches in progress.
        queue_size: reads the requests waiting for a fetch slot.
        receiving: reads the requests whose body is still arriving.
        sessions: reads the session cookie jars held.
    """

    def __init__(
        self,
        *,
        in_flight: Callable[[], float],
        queue_size: Callable[[], float],
        receiving: Callable[[], float],
        sessions: Callable[[], float],
    ) -> None:
        # The *_created series double the exposition and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "crawlmesh_node_requests",
            "Scrape requests answered, by outcome (ok or an error code).",
            ["code"],
            registry=r,
        )
        self.errors = Counter(
            "crawlmesh_node_errors",
            "Scrape requests that ended in an error, by error code.",
            ["code"],
            registry=r,
        )
        self.target_responses = Counter(
            "crawlmesh_node_target_responses",
            "Target responses relayed, by status class (2xx, 3xx, 4xx, 5xx).",
            ["status_class"],
            registry=r,
        )
        self.duration = Histogram(
            "crawlmesh_node_request_duration_seconds",
            "Time from a scrape request's arrival to its answer, queueing included.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.suspicious = Counter(
            "crawlmesh_node_suspicious",
            "Refusals that may be probing: failed auth, blocked addresses.",
            ["reason"],
            registry=r,
        )
        self.response_bytes = Counter(
            "crawlmesh_node_target_bytes",
            "Bytes of target bodies relayed (after decompression).",
            registry=r,
        )
        Gauge("crawlmesh_node_in_flight", "Fetches in progress.", registry=r).set_function(
            in_flight
        )
        Gauge(
            "crawlmesh_node_queue_size", "Requests waiting for a fetch slot.", registry=r
        ).set_function(queue_size)
        # Slow senders hold no queue place while their body arrives (only
        # their client's share): without this gauge they would not show.
        Gauge(
            "crawlmesh_node_receiving",
            "Scrape requests whose body is still arriving (no queue place yet).",
            registry=r,
        ).set_function(receiving)
        Gauge("crawlmesh_node_sessions", "Session cookie jars held.", registry=r).set_function(
            sessions
        )

    def render(self) -> bytes:
        """The exposition text (format 0.0.4)."""
        return generate_latest(self.registry)
