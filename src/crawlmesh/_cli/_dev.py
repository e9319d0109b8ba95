"""The developer commands ``fetch`` and ``parse`` (and the options they
share with ``shell``): one page, seen as a crawl would see it.

Each runs an engine with the spider's settings through
:mod:`._probe`, so what they show is what a crawl gets: robots.txt, the
node mesh, default headers, fetch hooks, retries and decoding included.
"""

from __future__ import annotations

import argparse
import http
import os
import sys
from typing import Any

import msgspec

from .._engine._export import JsonLinesWriter
from .._exceptions import UsageError
from .._hooks import Events, RequestFailed, ResponseReceived
from .._request import Request
from .._response import Response
from .._settings import LOG_LEVELS, Settings
from .._spider import Spider
from .._util._log import configure_logging
from ._args import add_spider_args, overrides, settings_args, spider_args
from ._probe import check_url, fetch_once, not_fetched, run_from
from ._project import guess_spider, resolve_spider
from ._run import resolve_settings
from ._shell import add_shell_parser, run_shell

__all__ = ["add_dev_parsers", "cmd_fetch", "cmd_parse", "cmd_shell", "dev_spider"]

Subparsers = argparse._SubParsersAction  # (argparse names it privately)


def _dev_args(p: argparse.ArgumentParser, *, spider_help: str) -> None:
    settings_args(p)
    p.add_argument("--spider", metavar="NAME_OR_PATH", help=spider_help)
    add_spider_args(p)
    p.add_argument("--log-level", choices=LOG_LEVELS, help="log level on stderr (default: error)")


def add_dev_parsers(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Register ``fetch``, ``parse`` and ``shell``."""
    spider_help = (
        "use this spider's settings (custom_settings) and filters: a name from "
        "./spiders/ or a module path (spiders.books, spiders/books.py:Books)"
    )
    fetch = sub.add_parser(
        "fetch",
        help="fetch a URL as a crawl would and print the body",
        description="Fetch URL through the same path as a crawl (robots.txt, the node "
        "mesh, default headers, fetch hooks, retries, decoding) and write the body to "
        "stdout as fetched, decompressed. The node it went through is named on stderr. "
        "An HTTP error status still prints the body and exits 0 (unless --fail); a "
        "fetch that fails exits 1.",
    )
    fetch.add_argument("url", metavar="URL")
    fetch.add_argument(
        "--headers",
        action="store_true",
        help="print the status line and the response headers instead of the body",
    )
    fetch.add_argument(
        "--fail", action="store_true", help="exit 1, printing nothing, for a 4xx or 5xx status"
    )
    _dev_args(fetch, spider_help=spider_help)

    parse = sub.add_parser(
        "parse",
        help="fetch a URL and show what a spider's callback makes of it",
        description="Fetch URL as a crawl would and run the spider's callback on the "
        "response: items are printed to stdout as JSON lines, the requests it yields "
        'to stderr (with --requests, as JSON lines on stdout, each {"request": {...}}). '
        "With --depth N, the requests are followed N-1 levels more, each handed to its "
        "own callback.",
    )
    parse.add_argument("url", metavar="URL")
    parse.add_argument(
        "-c", "--callback", default="parse", help="the spider method to run (default: parse)"
    )
    parse.add_argument(
        "-d",
        "--depth",
        type=int,
        default=1,
        metavar="N",
        help="levels of requests to follow, the first page included (default: 1)",
    )
    parse.add_argument(
        "--requests", action="store_true", help="the requests as JSON lines on stdout too"
    )
    parse.add_argument(
        "--pipelines", action="store_true", help="pass the items through the item pipelines"
    )
    _dev_args(
        parse,
        spider_help=spider_help + " (default: the one spider whose "
        "allowed_domains take URL's host)",
    )

    shell = add_shell_parser(sub)
    _dev_args(shell, spider_help=spider_help)


def dev_spider(
    args: argparse.Namespace, cls: type[Spider] | None = None
) -> tuple[Spider, Settings]:
    """The spider (``--spider``, else a plain :class:`Spider`) and its
    settings: defaults < ``--settings`` < its ``custom_settings`` < ``-s``.

    Raises:
        UsageError: the spider cannot be loaded or created, or bad settings.
    """
    if cls is None:
        cls = resolve_spider(args.spider) if args.spider else Spider
    layered = {"progress_interval": 0, **overrides(args)}
    settings = resolve_settings(
        cls, settings_file=args.settings, overrides=layered, override_source="-s"
    )
    configure_logging(args.log_level or "error")
    try:
        spider = cls(**spider_args(args.spider_args))
    except TypeError as exc:
        raise UsageError(f"cannot create spider {cls.__name__}: {exc}") from None
    return spider, settings


def fetched_line(response: Response) -> str:
    """The line on stderr that says what was fetched, and through which node."""
    moved = f" (redirected from {response.redirects[0]})" if response.redirects else ""
    return f"crawlmesh: {response.url}{moved}: HTTP {response.status} via node {response.node}"


def status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {status} {phrase}".rstrip()


def cmd_fetch(args: argparse.Namespace) -> int:
    check_url(args.url)
    spider, settings = dev_spider(args)
    got, stats = fetch_once(spider, settings, Request(args.url))
    if got is None:
        print(f"crawlmesh: error: {not_fetched(args.url, stats)}", file=sys.stderr)
        return 1
    response = got.response
    if response is None:
        print(f"crawlmesh: error: fetching {args.url} failed: {got.error}", file=sys.stderr)
        return 1
    print(fetched_line(response), file=sys.stderr, flush=True)
    if args.fail and response.status >= 400:
        print(f"crawlmesh: error: {status_line(response.status)}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    if args.headers:
        lines = [status_line(response.status), *(f"{k}: {v}" for k, v in response.headers.raw())]
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    else:
        data = response.body
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): its choice, not a failure; and
        # no second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _name_of(fn: object) -> str:
    return str(getattr(fn, "__name__", repr(fn)))


def _request_record(request: Request, depth: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "url": request.url,
        "method": request.method,
        "callback": _name_of(request.callback) if request.callback else "parse",
        "depth": depth,
    }
    if request.errback is not None:
        record["errback"] = _name_of(request.errback)
    for key in ("priority", "meta", "cb_kwargs"):
        value = getattr(request, key)
        if value:
            record[key] = value
    return record


class _ShowRequests:
    """The parse hook of ``parse``: shows each request a callback (or
    errback) yields, and lets it on to the scheduler only while it is
    within ``--depth``; items pass unchanged (to the pipelines, then
    stdout)."""

    def __init__(self, depth: int, out: JsonLinesWriter | None) -> None:
        self._depth = depth
        self._out = out
        self.requests = 0

    def on_output(self, response: Response | None, outputs: list[object]) -> list[object]:
        parent = response.request.depth if response is not None and response.request else 0
        return [out for out in outputs if self._shown(out, parent + 1)]

    def _shown(self, output: object, depth: int) -> bool:
        """Show ``output`` if it is a request; whether to hand it on."""
        if not isinstance(output, Request):
            return True
        self.requests += 1
        record = _request_record(output, depth)
        if self._out is not None:
            self._out.write({"request": record})
        else:
            print(
                f"crawlmesh: request {record['method']} {record['url']} -> "
                f"{record['callback']} (depth {depth})",
                file=sys.stderr,
            )
        return depth < self._depth


class _Watch:
    """What ``parse`` reports on stderr as the engine goes: each page
    fetched, each request that failed (the first one's failure is the
    command's)."""

    def __init__(self) -> None:
        self.first_failed = False
        self.callback_errors = 0
        self.failures = 0

    def subscribe(self, events: Events) -> None:
        events.subscribe(ResponseReceived, self._received)
        events.subscribe(RequestFailed, self._failed)

    def _received(self, event: ResponseReceived) -> None:
        print(fetched_line(event.response), file=sys.stderr)

    def _failed(self, event: RequestFailed) -> None:
        self.failures += 1
        self.first_failed |= event.request.depth == 0
        self.callback_errors += event.kind == "callback_error"
        print(
            f"crawlmesh: {event.request.url} failed ({event.kind}): {event.reason}", file=sys.stderr
        )


def cmd_parse(args: argparse.Namespace) -> int:
    """Run a spider's callback on one page, as a crawl would: the engine
    calls it (sync or async, yielding or returning) and its errbacks, hooks
    and, with ``--pipelines``, pipelines see what it yields."""
    check_url(args.url)
    if args.depth < 1:
        raise UsageError("--depth must be >= 1 (1: the page itself)")
    cls = None if args.spider else guess_spider(args.url)
    spider, settings = dev_spider(args, cls)
    callback = getattr(spider, args.callback, None)
    if not callable(callback):
        raise UsageError(f"spider {type(spider).__name__} has no callback {args.callback!r}")
    if not args.pipelines:
        spider.pipelines = ()
        settings = msgspec.structs.replace(settings, pipelines=[])
    out = JsonLinesWriter(sys.stdout.buffer)
    shown = _ShowRequests(args.depth, out if args.requests else None)
    watch = _Watch()
    first = Request(args.url, callback=callback, dont_filter=True)
    stats = run_from(
        spider, settings, first, items=out, parse_hooks=[shown], subscribe=watch.subscribe
    )
    if stats.pages == 0 and not watch.failures:
        print(f"crawlmesh: error: {not_fetched(args.url, stats)}", file=sys.stderr)
        return 1
    print(
        f"crawlmesh: parse: {stats.items} items, {shown.requests} requests "
        f"({stats.pages} pages, depth {args.depth})",
        file=sys.stderr,
    )
    return 1 if watch.first_failed or watch.callback_errors else 0


def cmd_shell(args: argparse.Namespace) -> int:
    if args.url:
        check_url(args.url)
    spider, settings = dev_spider(args)
    return run_shell(spider, settings, args.url, args.repl)
