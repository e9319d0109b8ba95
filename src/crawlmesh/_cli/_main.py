"""The ``crawlmesh`` command line: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import trio

from .._balancer import check_nodes
from .._engine import Engine
from .._exceptions import (
    BackendError,
    HookError,
    UsageError,
    plain_errors,
    sole_leaf,
)
from .._feeds import FORMATS, FeedSpec, format_for
from .._observe import CrawlStats, choose_progress, stats_schema
from .._settings import LOG_LEVELS
from .._spider import Spider
from .._util._log import configure_logging
from .._util._redact import redact
from .._util._version import __version__
from ._args import add_spider_args
from ._args import overrides as _overrides
from ._args import settings_args as _settings_args
from ._args import spider_args as _spider_args
from ._demosite import DemoSite, open_demo_nodes
from ._dev import add_dev_parsers, cmd_fetch, cmd_parse, cmd_shell
from ._genspider import add_genspider_parser, cmd_genspider
from ._hints import scrapy_command_hint
from ._loader import load_spider_class
from ._project import add_list_parser, cmd_list, resolve_spider
from ._run import (
    EMPTY_EXIT_CODE,
    EXIT_CODES,
    EXIT_STATUS_HELP,
    Sinks,
    empty_crawl,
    open_sinks,
    resolve_settings,
    run_engine,
)
from ._site_server import open_site_server

__all__ = ["main"]

FORMAT_NAMES = ", ".join(fmt.name for fmt in FORMATS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawlmesh", description="A Trio streaming crawl framework with a built-in balancer."
    )
    parser.add_argument("--version", action="version", version=f"crawlmesh {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _crawl_parser(sub)
    _runspider_parser(sub)
    add_dev_parsers(sub)  # fetch, parse, shell
    add_genspider_parser(sub)
    add_list_parser(sub)
    _nodes_parser(sub)
    _demo_parser(sub)
    _node_parser(sub)
    _backlog_parser(sub)
    _schema_parser(sub)
    return parser


def _crawl_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that crawls (crawl, demo)."""
    _settings_args(p)
    p.add_argument(
        "-o",
        "--output",
        dest="feeds",
        action="append",
        type=lambda path: (path, False),
        default=[],
        metavar="PATH",
        help="append items to PATH, its format from its extension: .jsonl/.jl, .json, "
        ".csv, .xml; - is stdout (repeatable; default: the feeds setting, else "
        "stdout as JSON lines)",
    )
    p.add_argument(
        "-O",
        "--overwrite-output",
        dest="feeds",
        action="append",
        type=lambda path: (path, True),
        metavar="PATH",
        help="as -o, but empty PATH first (repeatable)",
    )
    p.add_argument(
        "-t",
        "--output-format",
        metavar="FORMAT",
        default="",
        help=f"the format of every -o/-O, whatever the extension: {FORMAT_NAMES}",
    )
    p.add_argument("--errors", metavar="PATH", help="failed requests as JSON lines")
    p.add_argument(
        "--stats",
        metavar="PATH",
        help="write the final stats as JSON (its schema: crawlmesh stats-schema)",
    )
    p.add_argument(
        "--max-pages",
        type=int,
        metavar="N",
        help="stop after N pages (with --backend: this worker's; -s backend.max_pages=N "
        "limits the whole crawl)",
    )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="log level (default: the log_level setting)",
    )
    p.add_argument(
        "--log-format",
        choices=["console", "json"],
        default="console",
        help="json: one JSON object per line on stderr, the final stats included",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no final stats")
    p.add_argument(
        "--progress",
        choices=["auto", "live", "lines", "none"],
        help="a live status block on the terminal, periodic log lines, or none "
        "(default: auto, live on a terminal unless the items are printed there; "
        "none with -q)",
    )
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics while crawling",
    )


def _crawl_parser(sub: Any) -> None:
    crawl = sub.add_parser(
        "crawl",
        help="run a spider",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    crawl.add_argument(
        "spider",
        metavar="NAME|MODULE[:Class]",
        help="a spider's name (from ./spiders/), or its module: spiders.books "
        "(./spiders/books.py), spiders.books:Books or spiders/books.py",
    )
    add_spider_args(crawl)
    crawl.add_argument(
        "--jobdir",
        metavar="DIR",
        help="keep the crawl's state in DIR; the same command again resumes it",
    )
    crawl.add_argument(
        "--backend",
        metavar="URL",
        help="share the crawl with every worker given the same redis:// URL "
        "(the setting backend.url)",
    )
    crawl.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 even when nothing at all was fetched (else exit status 6)",
    )
    _crawl_args(crawl)


def _runspider_parser(sub: Any) -> None:
    run = sub.add_parser(
        "runspider",
        help="run the spider of a file (crawl FILE.py)",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("spider", metavar="FILE.py[:Class]", help="a file defining one spider")
    run.add_argument(
        "-a",
        dest="spider_args",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a spider argument (repeatable)",
    )
    _crawl_args(run)


def _nodes_parser(sub: Any) -> None:
    nodes = sub.add_parser("nodes", help="inspect the egress node mesh")
    nodes_sub = nodes.add_subparsers(dest="nodes_command", required=True, metavar="ACTION")
    check = nodes_sub.add_parser("check", help="check each node's health and latency")
    _settings_args(check)


def _demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="crawl an embedded demo site (no internet needed)")
    demo.add_argument("--books", type=int, default=200, help="books in the demo shop")
    demo.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="only serve the shop on 127.0.0.1:PORT until Ctrl-C (no nodes, no crawl), "
        "for spiders of your own",
    )
    _crawl_args(demo)


def _backlog_parser(sub: Any) -> None:
    backlog = sub.add_parser(
        "backlog",
        help="a shared crawl's backlog: once as JSON, or served as Prometheus metrics",
    )
    backlog.add_argument("--backend", metavar="URL", required=True, help="the crawl's redis:// URL")
    backlog.add_argument(
        "--namespace", required=True, help="the crawl's namespace (its spider's name by default)"
    )
    backlog.add_argument(
        "--serve", metavar="HOST:PORT", help="serve GET /metrics instead of printing once"
    )
    backlog.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _schema_parser(sub: Any) -> None:
    schema = sub.add_parser(
        "stats-schema", help="print the JSON Schema of the --stats file and exit"
    )
    schema.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _node_parser(sub: Any) -> None:
    node = sub.add_parser(
        "node",
        help="run a fetch node service (egress for crawls)",
        description="Serve POST /scrape, GET /health and GET /metrics. Secure by default: "
        "bearer tokens, an SSRF guard, per-client limits (a client is its token), a bounded "
        "queue, connection caps and header/body/write timeouts. Other limits are keys of "
        "the --config file (see the README).",
    )
    node.add_argument("--config", metavar="PATH", help="a TOML file of node settings")
    node.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    node.add_argument("--port", type=int, help="port (default 8700; 0 picks a free one)")
    node.add_argument("--name", help="the node's name in answers (default: the host name)")
    node.add_argument("--region", help="the region the node's traffic egresses in")
    node.add_argument("--token-file", metavar="PATH", help="bearer tokens, one per line")
    node.add_argument(
        "--no-auth", action="store_true", default=None, help="serve without tokens (loopback only)"
    )
    node.add_argument(
        "--allow-private",
        action="store_true",
        default=None,
        help="let targets resolve to loopback and private addresses (tests, demos)",
    )
    node.add_argument(
        "--allow-net",
        dest="allow_networks",
        action="append",
        metavar="CIDR",
        help="allow a non-public range (repeatable)",
    )
    node.add_argument("--concurrency", type=int, metavar="N", help="fetches at once (64)")
    node.add_argument("--max-queue", type=int, metavar="N", help="requests waiting (256)")
    node.add_argument("--client-rate", type=float, metavar="R", help="requests/s per client (200)")
    node.add_argument("--client-burst", type=int, metavar="N", help="burst beyond the rate (200)")
    node.add_argument(
        "--client-concurrency",
        type=int,
        metavar="N",
        help="fetch slots per client (a token; an address without auth): half of --concurrency",
    )
    node.add_argument(
        "--client-queue", type=int, metavar="N", help="a client's requests waiting (128)"
    )
    node.add_argument(
        "--write-timeout", type=float, metavar="S", help="for a client to take an answer (30 s)"
    )
    node.add_argument("--drain-timeout", type=float, metavar="S", help="SIGTERM drain (30 s)")
    node.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    node.add_argument("--log-format", choices=["console", "json"], default="console")
    node.add_argument("--debug", action="store_true", help="tracebacks for usage errors")


def _fail(message: str) -> NoReturn:
    # (A settings error may quote a value: a proxy URL, a backend URL.)
    print(f"crawlmesh: error: {redact(message)}", file=sys.stderr)
    sys.exit(2)


def _feeds(args: argparse.Namespace) -> list[FeedSpec]:
    """The feeds -o, -O and -t ask for (a path given twice: the last wins)."""
    specs: dict[str, FeedSpec] = {}
    for path, overwrite in args.feeds:
        specs[path] = FeedSpec(path, format_for(path, args.output_format), overwrite)
    if args.output_format and not specs:
        raise UsageError("-t names the format of -o/-O outputs: give one (-o - for stdout)")
    return list(specs.values())


def _items_on_stdout(args: argparse.Namespace) -> bool:
    return not args.feeds or any(path == "-" for path, _ in args.feeds)


def _prepare(
    args: argparse.Namespace, spider_cls: type[Spider], spider_kwargs: dict[str, Any]
) -> tuple[Engine, Sinks]:
    args.progress_mode = choose_progress(
        args.progress,
        quiet=args.quiet,
        json_logs=args.log_format == "json",
        items_on_stdout=_items_on_stdout(args),
    )
    settings = resolve_settings(
        spider_cls, settings_file=args.settings, overrides=_overrides(args), override_source="-s"
    )
    configure_logging(settings.log_level, json=args.log_format == "json")
    try:
        spider = spider_cls(**spider_kwargs)
    except TypeError as exc:
        raise UsageError(f"cannot create spider {spider_cls.__name__}: {exc}") from None
    sinks = open_sinks(
        spider,
        settings,
        output=None,
        errors=args.errors,
        jobdir=getattr(args, "jobdir", None),
        feeds=_feeds(args),
    )
    engine = Engine(spider, settings, items=sinks.items, errors=sinks.errors, backend=sinks.backend)
    return engine, sinks


def _finish(engine: Engine, stats: CrawlStats, args: argparse.Namespace, code: int) -> int:
    if not args.quiet:
        if args.log_format == "json":
            # One more JSON line (whatever the log level): stderr stays JSON
            # lines from end to end.
            line = {
                "event": "crawl finished",
                "level": "info",
                "logger": "crawlmesh",
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "stats": msgspec.json.decode(stats.to_json()),
            }
            print(msgspec.json.encode(line).decode(), file=sys.stderr, flush=True)
        else:
            print(stats.render(), file=sys.stderr, flush=True)
    if args.stats:
        try:
            with open(args.stats, "wb") as f:
                f.write(stats.to_json())
        except OSError as exc:
            print(f"crawlmesh: error: cannot write stats file: {exc}", file=sys.stderr)
            return 1
    error = engine.output_error
    if error is None:
        return code
    if isinstance(error, BrokenPipeError):
        # The reader of stdout went away (e.g. `| head`): its choice, not a
        # failure (the crawl stopped for it: output_error, not a status).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return code if code in EXIT_CODES.values() else 0
    print(f"crawlmesh: error: cannot write items: {error}", file=sys.stderr)
    return 1


def _cmd_crawl(args: argparse.Namespace) -> int:
    spider_cls = resolve_spider(args.spider)
    engine, sinks = _prepare(args, spider_cls, _spider_args(args.spider_args))
    try:
        stats, code = trio.run(
            partial(run_engine, engine, metrics=args.metrics, live=args.progress_mode == "live")
        )
    finally:
        sinks.close()
    if code == 0 and empty_crawl(stats) and not args.allow_empty:
        code = EMPTY_EXIT_CODE
    return _finish(engine, stats, args, code)


def _cmd_runspider(args: argparse.Namespace) -> int:
    path = args.spider.partition(":")[0]
    if not path.endswith(".py"):
        raise UsageError(f"runspider {args.spider}: expected a .py file (crawl NAME for a name)")
    return _cmd_crawl(args)


def _demo_spider_target() -> str:
    """Where spiders/demo.py is: the current directory (a checkout, so edits
    show), the copy a wheel bundles, or the checkout an editable install
    points at."""
    if os.path.isfile(os.path.join("spiders", "demo.py")):
        return "spiders.demo:DemoSpider"
    if importlib.util.find_spec("crawlmesh._bundled_demo") is not None:
        return "crawlmesh._bundled_demo:DemoSpider"
    checkout = Path(__file__).resolve().parents[3] / "spiders" / "demo.py"
    if checkout.is_file():
        return f"{checkout}:DemoSpider"
    raise UsageError("the demo spider (spiders/demo.py) is missing from this installation")


def _serve_demo_site(site: DemoSite, port: int) -> int:
    """Serve the demo shop on loopback until Ctrl-C."""

    async def main() -> None:
        async with open_site_server(site.handle, port=port) as base:
            print(
                f"crawlmesh demo: serving a {site.item_count}-book shop at {base}/ "
                "(Ctrl-C stops it)",
                file=sys.stderr,
                flush=True,
            )
            await trio.sleep_forever()

    try:
        trio.run(main)
    except BaseException as exc:  # the nursery wraps them in groups
        leaf = sole_leaf(exc)
        if isinstance(leaf, KeyboardInterrupt):
            return 0
        if isinstance(leaf, OSError):
            raise UsageError(f"cannot serve the demo shop on 127.0.0.1:{port}: {leaf}") from None
        raise
    return 0  # pragma: no cover (sleep_forever ends only by Ctrl-C)


def _cmd_demo(args: argparse.Namespace) -> int:
    site = DemoSite(books=args.books)
    if args.serve is not None:
        return _serve_demo_site(site, args.serve)
    spider_cls = load_spider_class(_demo_spider_target())
    engine: Engine | None = None

    async def main() -> tuple[CrawlStats, int]:
        assert engine is not None
        async with open_site_server(site.handle) as base, open_demo_nodes() as specs:
            print(
                f"crawlmesh demo: serving a {site.item_count}-book shop at {base}, "
                f"through {len(specs)} local nodes",
                file=sys.stderr,
                flush=True,
            )
            engine.spider.start_url = base + "/"  # type: ignore[attr-defined]
            engine.use_nodes(specs)
            return await run_engine(engine, metrics=args.metrics, live=args.progress_mode == "live")

    # Weighted round-robin shows shares that match the weights; -s can change it.
    args.overrides.insert(0, "balancer.strategy=weighted")
    engine, sinks = _prepare(args, spider_cls, {})
    try:
        stats, code = trio.run(main)
    finally:
        sinks.close()
    return _finish(engine, stats, args, code)


def _cmd_nodes(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    settings = resolve_settings(
        Spider, settings_file=args.settings, overrides=overrides, override_source="-s"
    )
    configure_logging("error")
    rows = trio.run(check_nodes, settings)
    print(
        f"{'node':<16} {'kind':<6} {'region':<12} {'weight':>6}  {'result':<6} "
        f"{'latency ms':>10}  detail"
    )
    for row in rows:
        print(
            f"{row.name[:16]:<16} {row.kind:<6} {row.region[:12]:<12} {row.weight:>6g}  "
            f"{'ok' if row.ok else 'FAIL':<6} {row.latency_ms:>10.1f}  {row.detail}"
        )
    return 0 if all(r.ok for r in rows) else 1


def _cmd_node(args: argparse.Namespace) -> int:
    from .._node import load_node_config, run_node

    keys = (
        "host", "port", "name", "region", "token_file", "no_auth", "allow_private",
        "allow_networks", "concurrency", "max_queue", "client_rate", "client_burst",
        "client_concurrency", "client_queue", "write_timeout", "drain_timeout",
    )  # fmt: skip
    config = load_node_config(args.config, {key: getattr(args, key) for key in keys})
    configure_logging(args.log_level, json=args.log_format == "json")
    return run_node(config)


def _cmd_backlog(args: argparse.Namespace) -> int:
    from .._state._redis import print_backlog, serve_backlog

    if args.serve is None:
        backlog = trio.run(print_backlog, args.backend, args.namespace)
        sys.stdout.buffer.write(msgspec.json.encode(backlog) + b"\n")
        return 0

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            try:
                binds = await nursery.start(serve_backlog, args.backend, args.namespace, args.serve)
            except* OSError as group:  # (a port taken, an address not ours)
                raise UsageError(f"--serve {args.serve}: {sole_leaf(group)}") from None
            print(f"crawlmesh backlog: serving {binds[0]}/metrics", file=sys.stderr, flush=True)

    try:
        with plain_errors():
            trio.run(serve)
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_stats_schema(args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(stats_schema())) + b"\n")
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``crawlmesh`` console script."""
    hint = scrapy_command_hint(sys.argv[1:] if argv is None else argv)
    if hint is not None:
        _fail(hint)
    args = _parser().parse_args(argv)
    try:
        commands = {
            "crawl": _cmd_crawl,
            "runspider": _cmd_runspider,
            "fetch": cmd_fetch,
            "parse": cmd_parse,
            "shell": cmd_shell,
            "genspider": cmd_genspider,
            "list": cmd_list,
            "demo": _cmd_demo,
            "nodes": _cmd_nodes,
            "node": _cmd_node,
            "backlog": _cmd_backlog,
            "stats-schema": _cmd_stats_schema,
        }
        code = commands[args.command](args)
    except UsageError as exc:
        if args.debug:
            raise
        _fail(str(exc))
    except (BackendError, HookError) as exc:
        if args.debug:
            raise
        print(f"crawlmesh: error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)
