"""Running a crawl from Python: settings layering, sinks, signals."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, BinaryIO

import structlog
import trio

from .._engine import Engine
from .._exceptions import UsageError, plain_errors, sole_leaf
from .._feeds import FeedSet, FeedSpec, JsonLinesWriter, format_for, open_feeds
from .._observe import CrawlStats, show_live_status
from .._settings import Settings, load_settings, read_settings_file
from .._spider import Spider
from .._state import Backend, JobDir, MemoryBackend
from .._util._console import console

__all__ = ["Sinks", "crawl", "feed_specs", "open_sinks", "resolve_settings", "run_engine"]

log = structlog.get_logger("crawlmesh")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

# The exit status of a crawl that ended for a reason of its own (a signal's
# status wins). Only a crawl that did what it was asked exits 0, so a
# scheduler (a Kubernetes Job, cron, CI) never counts a crawl that stopped
# early as done. The README's table and `crawlmesh crawl --help` list them.
FINISH_EXIT_CODES = {
    "finished": 0,
    "max_pages": 0,  # (a limit the user set: this worker did what it was asked)
    "max_items": 0,
    "output_error": 1,
    "backend_error": 3,
    "fenced": 4,
    "crawl_lost": 5,
}

EXIT_STATUS_HELP = """\
exit status:
  0    finished (or stopped at --max-pages / max_items, which count per worker)
  1    an error: the items or stats file cannot be written, or the worker
       cannot join a shared crawl (Redis unreachable at start, items file taken)
  2    a usage error (bad arguments, settings, spider module)
  3    backend_error: Redis refused the crawl's script (the crawl is unfinished)
  4    fenced: this worker was silent past backend.lease_ttl; others took its work
  5    crawl_lost: the crawl's state vanished from Redis (a restart without
       persistence, FLUSHALL, eviction); nothing was crawled again
  6    nothing at all was fetched (a warning says the likely mistake);
       --allow-empty exits 0 instead
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""


EMPTY_EXIT_CODE = 6
"""A crawl that fetched nothing at all, for a likely mistake (see ``--allow-empty``)."""


def empty_crawl(stats: CrawlStats) -> bool:
    """Whether a crawl fetched nothing at all. A worker of a shared crawl
    may rightly find nothing left to do: only a crawl of its own counts."""
    return stats.pages == 0 and not stats.crawl_totals


def exit_status(finish_reason: str) -> int:
    """The exit status of a crawl that ended with ``finish_reason`` (see
    :data:`FINISH_EXIT_CODES`; a reason not listed is an error, 1)."""
    return FINISH_EXIT_CODES.get(finish_reason, 1)


class Sinks:
    """Where a crawl keeps what it produces: its feeds, its errors file and
    its backend (each opened by :func:`open_sinks`)."""

    def __init__(self, items: FeedSet, errors: JsonLinesWriter | None, backend: Backend) -> None:
        self.items = items
        self.errors = errors
        self.backend = backend

    def close(self) -> None:
        self.items.close()
        if self.errors is not None:
            self.errors.close()


def feed_specs(
    settings: Settings, feeds: Sequence[FeedSpec] = (), output: str | os.PathLike[str] | None = None
) -> list[FeedSpec]:
    """The feeds of a crawl: ``feeds`` (the command line's), ``output`` (a
    path, emptied first, its format from its extension), then the
    ``feeds`` setting's other paths; stdout as JSON lines if none.

    Raises:
        UsageError: a path's format cannot be told.
    """
    specs = list(feeds)
    if output is not None:
        path = os.fspath(output)
        specs.append(FeedSpec(path, format_for(path), overwrite=True))
    taken = {spec.target for spec in specs}
    for target, feed in settings.feeds.items():
        if target not in taken:
            specs.append(FeedSpec.from_settings(target, feed))
    return specs or [FeedSpec("-", format_for("-"))]


def open_sinks(
    spider: Spider,
    settings: Settings,
    *,
    output: str | os.PathLike[str] | BinaryIO | None,
    errors: str | os.PathLike[str] | None,
    jobdir: str | os.PathLike[str] | None,
    feeds: Sequence[FeedSpec] = (),
) -> Sinks:
    """Open the backend (a job directory, the Redis of
    ``settings.backend.url``, else in memory), the feeds (see
    :func:`feed_specs`; an ``output`` that is an open file is JSON lines)
    and the errors file. A resumed job, or a worker joining a shared crawl,
    carries on with its files (the engine cuts each feed back to what was
    committed); a new one appends to a feed or empties it as it says.

    Raises:
        UsageError: a file cannot be opened (naming it), or both a job
            directory and a shared backend are asked for.
        SettingsError: the job directory cannot be opened.
    """
    stream = None
    if output is not None and not isinstance(output, str | os.PathLike):
        stream, output = output, None
    specs = feed_specs(settings, feeds, output)
    backend: Backend = MemoryBackend()
    resume = False
    if jobdir is not None:
        if settings.backend.url:
            raise UsageError("--jobdir and --backend exclude each other: Redis keeps the state")
        job = JobDir(jobdir, spider)
        backend, resume = job, job.resumed
    elif settings.backend.url:
        from .._state._redis import RedisBackend  # (imports coredis only when asked)

        paths = [spec.target for spec in specs if spec.target != "-" and stream is None]
        backend = RedisBackend(
            settings.backend, spider, concurrency=settings.concurrency, outputs=paths
        )
        resume = True  # another worker's state may be there: never truncate
    if stream is not None:
        items = FeedSet([JsonLinesWriter(stream)])
    else:
        items = open_feeds(specs, resume=resume)
    if jobdir is not None and resume and any(f.length() is None for f in items.feeds):
        log.warning(
            "resuming with items on a pipe: the items of pages in flight when the "
            "crawl was killed may appear again (-o FILE avoids it)"
        )
    error_log = None
    if errors is not None:
        try:
            error_log = JsonLinesWriter(errors, append=resume)
        except OSError as exc:
            items.close()
            raise UsageError(f"cannot open errors file {errors!r}: {exc.strerror}") from None
    return Sinks(items, error_log, backend)


def resolve_settings(
    spider_cls: type[Spider],
    *,
    settings_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_source: str = "settings",
) -> Settings:
    """Layer defaults < ``settings_file`` < the spider's ``custom_settings`` < ``overrides``.

    Raises:
        SettingsError: naming the layer and key at fault.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = []
    file_nodes = False
    if settings_file is not None:
        data = read_settings_file(os.fspath(settings_file))
        layers.append((f"settings file {os.fspath(settings_file)}", data))
        file_nodes = "nodes" in data
    if spider_cls.custom_settings:
        layers.append((f"{spider_cls.__name__}.custom_settings", spider_cls.custom_settings))
    if overrides:
        layers.append((override_source, overrides))
    if file_nodes and not any("nodes" in layer for _, layer in layers[1:]):
        # The file's [[nodes]] are the mesh: re-read on SIGHUP (and on
        # change) as a --nodes file is; --nodes, if given, still wins.
        layers.append(
            ("settings", {"balancer.nodes_settings_file": os.fspath(settings_file or "")})
        )
    return load_settings(layers)


async def run_engine(
    engine: Engine,
    *,
    handle_signals: bool = True,
    metrics: str | None = None,
    live: bool = False,
) -> tuple[CrawlStats, int]:
    """Run ``engine``; on SIGINT/SIGTERM stop gracefully, on a second SIGINT exit at once.
    With ``metrics`` (HOST:PORT), serve Prometheus metrics there meanwhile.
    With ``live``, keep a status block redrawn at the bottom of stderr (a
    terminal; erased before this returns or raises); the plain progress
    lines still follow the ``progress_interval`` setting.

    Returns:
        The stats and the exit status: 130/143 after a signal, else the
        one :func:`exit_status` gives for its finish reason.
    """
    exit_code = 0

    async def watch_signals(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal exit_code
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    engine.reload_nodes()
                    continue
                if exit_code:
                    # Write what is queued for export (each line whole) and
                    # every request not ended yet, then go.
                    flushed = engine.flush_now()
                    left = engine.abandon_now("second signal")
                    engine.finish_feeds()  # (a JSON array or XML feed stays valid)
                    console.clear()  # (no live block left on screen after the exit)
                    print(
                        f"crawlmesh: second signal, exiting now ({flushed} queued items "
                        f"written; {left} requests not finished, {engine.unfinished_where()})",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(EXIT_CODES.get(signal.Signals(signum), 130))
                exit_code = EXIT_CODES.get(signal.Signals(signum), 130)
                engine.request_stop("shutdown")

    with plain_errors():
        async with trio.open_nursery() as nursery:
            if handle_signals:
                await nursery.start(watch_signals)
            if metrics is not None:
                try:
                    # Imported here: hypercorn, Starlette and the Prometheus
                    # client cost a crawl without --metrics ~0.15 s of start-up.
                    from .._observe import serve_metrics

                    binds = await nursery.start(serve_metrics, engine, metrics)
                except* OSError as group:  # (a port taken, an address not ours)
                    raise UsageError(f"--metrics {metrics}: {sole_leaf(group)}") from None
                log.info("serving metrics", url=f"{binds[0]}/metrics")
            if live:
                nursery.start_soon(show_live_status, engine)
            stats = await engine.run()
            nursery.cancel_scope.cancel()
    return stats, exit_code or exit_status(stats.finish_reason)


def crawl(
    spider: type[Spider] | Spider,
    *,
    settings: Mapping[str, Any] | Settings | None = None,
    output: str | os.PathLike[str] | BinaryIO | None = None,
    errors: str | os.PathLike[str] | None = None,
    jobdir: str | os.PathLike[str] | None = None,
    **spider_args: Any,
) -> CrawlStats:
    """Run a spider to the end and return its stats (blocking; starts Trio).

    Args:
        spider: a Spider class (instantiated with ``spider_args``) or instance.
        settings: a :class:`Settings`, or overrides (dotted keys or tables)
            applied over the spider's ``custom_settings``.
        output: where items go: a path (emptied first; its format from
            its extension, see :data:`~crawlmesh._feeds.FORMATS`) or a
            binary file (JSON lines); by default the ``feeds`` setting's,
            else stdout.
        errors: a path for the errors file (failed requests, JSON lines).
        jobdir: keep the crawl's state in this directory; the same call
            again resumes it (as ``crawlmesh crawl --jobdir``).
    """
    instance = spider if isinstance(spider, Spider) else spider(**spider_args)
    if not isinstance(settings, Settings):
        settings = resolve_settings(type(instance), overrides=settings)
    sinks = open_sinks(instance, settings, output=output, errors=errors, jobdir=jobdir)
    try:
        engine = Engine(
            instance, settings, items=sinks.items, errors=sinks.errors, backend=sinks.backend
        )
        stats, _ = trio.run(partial(run_engine, engine, handle_signals=False))
    finally:
        sinks.close()
    return stats
