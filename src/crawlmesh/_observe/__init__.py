"""Observation: what a crawl reports about itself, and how.

* :class:`StatsCollector`: the counters kept while crawling; at the end
  the frozen :class:`CrawlStats` record (``--stats FILE``, with its JSON
  Schema, :func:`stats_schema`) and its text block.
* :class:`NodeStats`: what the statistics say about each node; the
  balancer fills it in, through the small protocols of ``_sources``
  (:class:`MeshSource`, :class:`NodeSource`), so nothing here imports the
  stage it reports on.
* :func:`report_progress` / :func:`show_live_status`: progress on stderr,
  log lines or a live block (:func:`choose_progress` picks), rendered from
  a :class:`Status` snapshot.
* :func:`serve_metrics`: ``crawl --metrics``, the counters as Prometheus
  exposition (:class:`CrawlCollector`; :func:`serve_app` serves any ASGI app
  the same way).

Below the state backends and the balancer, which both feed it.
"""

import typing as _typing

from .._util._lazy import lazy_exports as _lazy_exports
from ._nodes import (
    SHARE_MIN_REQUESTS,
    SHARE_TOLERANCE,
    SHARE_TOLERANCE_RELATIVE,
    TARGET_FAILURE_KINDS,
    NodeHealth,
    NodeStats,
)
from ._progress import LiveCrawl, ProgressMode, choose_progress, report_progress, show_live_status
from ._record import SCHEMA_VERSION, CrawlStats, Distribution, DomainStats, NodeShare, stats_schema
from ._sources import CircuitCounts, MeshSource, NodeSource
from ._stats import StatsCollector
from ._status import RateMeter, Status, node_summary, render_status, take_status

if _typing.TYPE_CHECKING:
    from ._metrics import CrawlCollector, MetricsSource, serve_app, serve_metrics

__all__ = [
    "SCHEMA_VERSION",
    "SHARE_MIN_REQUESTS",
    "SHARE_TOLERANCE",
    "SHARE_TOLERANCE_RELATIVE",
    "TARGET_FAILURE_KINDS",
    "CircuitCounts",
    "CrawlCollector",
    "CrawlStats",
    "Distribution",
    "DomainStats",
    "LiveCrawl",
    "MeshSource",
    "MetricsSource",
    "NodeHealth",
    "NodeShare",
    "NodeSource",
    "NodeStats",
    "ProgressMode",
    "RateMeter",
    "StatsCollector",
    "Status",
    "choose_progress",
    "node_summary",
    "render_status",
    "report_progress",
    "serve_app",
    "serve_metrics",
    "show_live_status",
    "stats_schema",
    "take_status",
]

# The Prometheus exporter's stack (hypercorn, prometheus-client, Starlette)
# loads on first use: a crawl without --metrics does not pay for it.
_LAZY = frozenset({"CrawlCollector", "MetricsSource", "serve_app", "serve_metrics"})


__getattr__, __dir__ = _lazy_exports(__name__, "._metrics", _LAZY, globals())
