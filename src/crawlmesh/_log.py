"""Logging: structlog to stderr, so stdout carries nothing but items.

Log lines go through :data:`~crawlmesh._console.console`, so a live status
block on the terminal is erased and drawn again below each line instead of
being torn by it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from ._console import console

__all__ = ["configure_logging"]


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    """Send crawlmesh's logs to stderr at ``level``.

    Args:
        level: debug, info, warning or error.
        json: one JSON object per line instead of the console format.
    """
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="%H:%M:%S" if not json else "iso"),
    ]
    if json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        colors = sys.stderr.isatty()
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=colors,
                exception_formatter=structlog.dev.plain_traceback,
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_console_logger,
        cache_logger_on_first_use=False,
    )


class _ConsoleLogger:
    """structlog's logger: each message is one whole line on the console."""

    def msg(self, message: str) -> None:
        console.write(message + "\n")
        console.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_LOGGER = _ConsoleLogger()


def _console_logger(*args: object) -> _ConsoleLogger:
    return _LOGGER
