"""Running a crawl from Python: settings layering, sinks, signals."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from functools import partial
from typing import Any, BinaryIO

import structlog
import trio

from ._engine import Engine
from ._export import JsonLinesWriter
from ._settings import Settings, load_settings, read_settings_file
from ._spider import Spider
from ._stats import CrawlStats

__all__ = ["crawl", "resolve_settings", "run_engine"]

log = structlog.get_logger("crawlmesh")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


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
    if settings_file is not None:
        layers.append(
            (
                f"settings file {os.fspath(settings_file)}",
                read_settings_file(os.fspath(settings_file)),
            )
        )
    if spider_cls.custom_settings:
        layers.append((f"{spider_cls.__name__}.custom_settings", spider_cls.custom_settings))
    if overrides:
        layers.append((override_source, overrides))
    return load_settings(layers)


async def run_engine(engine: Engine, *, handle_signals: bool = True) -> tuple[CrawlStats, int]:
    """Run ``engine``; on SIGINT/SIGTERM stop gracefully, on a second SIGINT exit at once.

    Returns:
        The stats and the exit status (0, or 130/143 after a signal).
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
                    # Write what is queued for export (each line whole), then go.
                    flushed = engine.flush_now()
                    print(
                        f"crawlmesh: second signal, exiting now ({flushed} queued items written)",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(EXIT_CODES.get(signal.Signals(signum), 130))
                exit_code = EXIT_CODES.get(signal.Signals(signum), 130)
                engine.request_stop("shutdown")

    async with trio.open_nursery() as nursery:
        if handle_signals:
            await nursery.start(watch_signals)
        stats = await engine.run()
        nursery.cancel_scope.cancel()
    return stats, exit_code


def crawl(
    spider: type[Spider] | Spider,
    *,
    settings: Mapping[str, Any] | Settings | None = None,
    output: str | os.PathLike[str] | BinaryIO | None = None,
    errors: str | os.PathLike[str] | None = None,
    **spider_args: Any,
) -> CrawlStats:
    """Run a spider to the end and return its stats (blocking; starts Trio).

    Args:
        spider: a Spider class (instantiated with ``spider_args``) or instance.
        settings: a :class:`Settings`, or overrides (dotted keys or tables)
            applied over the spider's ``custom_settings``.
        output: where items go as JSON lines (a path or binary file); stdout
            by default.
        errors: a path for the errors file (failed requests, JSON lines).
    """
    instance = spider if isinstance(spider, Spider) else spider(**spider_args)
    if not isinstance(settings, Settings):
        settings = resolve_settings(type(instance), overrides=settings)
    items = JsonLinesWriter(output if output is not None else sys.stdout.buffer)
    error_log = JsonLinesWriter(errors) if errors is not None else None
    try:
        engine = Engine(instance, settings, items=items, errors=error_log)
        stats, _ = trio.run(partial(run_engine, engine, handle_signals=False))
    finally:
        items.close()
        if error_log is not None:
            error_log.close()
    return stats
