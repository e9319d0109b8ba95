"""Options more than one command shares: where settings come from, ``-s``
overrides and ``-a`` spider arguments."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from .._exceptions import SettingsError, UsageError
from .._settings import parse_override

__all__ = ["overrides", "settings_args", "spider_args"]


def settings_args(p: argparse.ArgumentParser) -> None:
    """The options that say where the settings and nodes come from."""
    p.add_argument(
        "-s",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (repeatable)",
    )
    p.add_argument("--settings", metavar="PATH", help="a TOML settings file")
    p.add_argument("--nodes", metavar="PATH", help="a TOML file of [[nodes]] (egress mesh)")
    p.add_argument("--debug", action="store_true", help="tracebacks for usage errors")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line overrides (``-s`` and the options that
    stand for a setting), as dotted keys."""
    out: dict[str, Any] = {}
    for text in args.overrides:
        key, value = parse_override(text)
        out[key] = value
    if getattr(args, "max_pages", None) is not None:
        if args.max_pages < 0:
            raise SettingsError("--max-pages must be >= 0")
        out["max_pages"] = args.max_pages
    if getattr(args, "log_level", None):
        out["log_level"] = args.log_level
    if getattr(args, "progress_mode", "lines") != "lines":
        out["progress_interval"] = 0  # (the live block replaces the lines)
    if getattr(args, "nodes", None):
        if not os.path.isfile(args.nodes):
            raise SettingsError(f"--nodes {args.nodes}: no such file")
        out["balancer.nodes_file"] = args.nodes
    if getattr(args, "backend", None):
        out["backend.url"] = args.backend
    return out


def add_spider_args(p: argparse.ArgumentParser) -> None:
    """``-a NAME=VALUE``, repeatable: the spider's arguments (see :func:`spider_args`)."""
    p.add_argument(
        "-a",
        dest="spider_args",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a spider argument (repeatable)",
    )


def spider_args(pairs: Sequence[str]) -> dict[str, str]:
    """``-a NAME=VALUE`` arguments as keyword arguments of the spider."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"-a {pair!r}: expected NAME=VALUE")
        out[name] = value
    return out
