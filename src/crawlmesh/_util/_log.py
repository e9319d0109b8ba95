"""Logging: structlog to stderr, so stdout carries nothing but items.

Every line goes through one list of processors: level, logger name and
timestamp are added, an exception is formatted to text, then every value
(the event, the exception's text included) is redacted (see
:mod:`crawlmesh._util._redact`) before the renderer: the console renderer, or one
JSON object per line with ``--log-format json``.

Log lines go through :data:`~crawlmesh._util._console.console`, so a live status
block on the terminal is erased and drawn again below each line instead of
being torn by it.

A line about a request carries the same four keys, spelled once in
:func:`request_keys`: ``url``, ``domain``, ``node`` and ``attempt``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit

import structlog

from ._console import console
from ._redact import redact_value

__all__ = ["configure_logging", "debug_enabled", "redact_processor", "request_keys"]

_debug = True  # until configure_logging() says otherwise (structlog's own default)


class _ConsoleLogger:
    """structlog's logger: each message is one whole line on the console.
    It knows the name it was asked for (the ``logger`` key of each line)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        console.write(message + "\n")
        console.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_LOGGERS: dict[str, _ConsoleLogger] = {}


def _console_logger(*args: object) -> _ConsoleLogger:
    name = args[0] if args and isinstance(args[0], str) else "crawlmesh"
    logger = _LOGGERS.get(name)
    if logger is None:
        logger = _LOGGERS[name] = _ConsoleLogger(name)
    return logger


def _add_logger_name(logger: Any, method_name: str, event_dict: Any) -> Any:
    event_dict.setdefault("logger", getattr(logger, "name", "crawlmesh"))
    return event_dict


def redact_processor(logger: Any, method_name: str, event_dict: Any) -> Any:
    """A structlog processor: every value of the line redacted (keys are
    ours, never secrets). Runs only for lines that pass the level filter."""
    for key, value in event_dict.items():
        if value is not None and not isinstance(value, bool | int | float):
            event_dict[key] = redact_value(value)
    return event_dict


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    """Send crawlmesh's logs to stderr at ``level``.

    Args:
        level: debug, info, warning or error.
        json: one JSON object per line (``timestamp``, ``level``, ``event``,
            ``logger`` and the line's own keys) instead of the console format.
    """
    global _debug
    number = logging.getLevelNamesMapping()[level.upper()]
    _debug = number <= logging.DEBUG
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="%H:%M:%S" if not json else "iso"),
        # The traceback as text, so the redaction sees it (both formats).
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_console_logger,
        cache_logger_on_first_use=False,
    )


def debug_enabled() -> bool:
    """Whether debug lines are logged: hot paths ask before building one.
    True unless :func:`configure_logging` set a higher level (structlog
    configured elsewhere filters the line itself)."""
    return _debug


def request_keys(
    url: str | None,
    domain: str | None = None,
    node: str | None = None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """The keys of a log line about a request.

    Args:
        url: the request's URL (None: a line about no request in particular,
            such as a breaker that half-opens with time).
        domain: the host the crawl schedules it under (derived from ``url``
            when not given).
        node: the egress node of the attempt (None: not sent yet, or unknown).
        attempt: the attempt the line is about, from 1 (0: never sent).
    """
    if domain is None and url is not None:
        try:
            domain = urlsplit(url).hostname or ""
        except ValueError:  # (an invalid URL is exactly what gets logged)
            domain = ""
    return {"url": url, "domain": domain, "node": node or None, "attempt": attempt}
