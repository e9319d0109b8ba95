"""``crawlmesh backlog``: how much work a shared crawl has left, once as
JSON or served as Prometheus metrics (what a Kubernetes HorizontalPodAutoscaler
scales crawl workers on, through prometheus-adapter)."""

from __future__ import annotations

from typing import Any

import coredis
import coredis.exceptions
import msgspec
import trio
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._exceptions import BackendError
from ..._observe import serve_app
from ._client import UNREACHABLE, Client, open_client, redact
from ._scripts import BACKLOG

__all__ = ["Backlog", "print_backlog", "read_backlog", "serve_backlog"]


class Backlog(msgspec.Struct):
    """A shared crawl's state, as one Redis script read it."""

    crawl: str
    queued: int
    """Requests waiting in the queues."""
    leased: int
    """Requests claimed by workers and not finished."""
    workers: int
    """Workers whose lease is current."""
    seeded: bool
    """The spider's ``start()`` ran to its end."""
    finished: bool
    """Seeded, and nothing queued or leased: the crawl is over."""


async def read_backlog(client: Client, namespace: str) -> Backlog:
    prefix = f"crawlmesh:{{{namespace}}}:"
    script = client.register_script(BACKLOG)
    reply: list[Any] = await script(keys=[prefix + "seen"], args=[prefix])
    queued, leased, workers, seed = reply
    seeded = seed == b"done"
    return Backlog(
        namespace, int(queued), int(leased), int(workers), seeded,
        seeded and int(queued) == 0 and int(leased) == 0,
    )  # fmt: skip


async def print_backlog(url: str, namespace: str) -> Backlog:
    """Read the backlog once.

    Raises:
        BackendError: Redis cannot be reached.
    """
    try:
        async with open_client(url) as client:
            return await read_backlog(client, namespace)
    except (*UNREACHABLE, coredis.exceptions.RedisError) as exc:
        raise BackendError(f"cannot read the backlog from {redact(url)}: {exc}") from None


def _app(url: str, namespace: str) -> Starlette:
    async def metrics(request: Request) -> Response:
        registry = CollectorRegistry()
        requests = Gauge(
            "crawlmesh_backlog_requests",
            "Requests of the crawl not finished, by state (queued or leased).",
            ["crawl", "state"],
            registry=registry,
        )
        workers = Gauge(
            "crawlmesh_backlog_workers", "Workers with a current lease.", ["crawl"],
            registry=registry,
        )  # fmt: skip
        finished = Gauge(
            "crawlmesh_backlog_finished", "1 once the crawl is over.", ["crawl"],
            registry=registry,
        )  # fmt: skip
        up = Gauge("crawlmesh_backlog_up", "1 if Redis answered.", ["crawl"], registry=registry)
        try:
            async with open_client(url) as client:
                backlog = await read_backlog(client, namespace)
        except (*UNREACHABLE, coredis.exceptions.RedisError):
            up.labels(namespace).set(0)
        else:
            up.labels(namespace).set(1)
            requests.labels(namespace, "queued").set(backlog.queued)
            requests.labels(namespace, "leased").set(backlog.leased)
            workers.labels(namespace).set(backlog.workers)
            finished.labels(namespace).set(int(backlog.finished))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/metrics", metrics), Route("/health", health)])


async def serve_backlog(
    url: str,
    namespace: str,
    bind: str,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve GET /metrics (Prometheus exposition) on ``bind`` (HOST:PORT)."""
    await serve_app(_app(url, namespace), bind, task_status=task_status)
