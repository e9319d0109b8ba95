"""The feed formats: each declared once, here, with what it can do.

A format is a :class:`FeedFormat` record: its name (``-t NAME``, the
``format`` key of a feed), the extensions that choose it, the writer that
makes it, and whether it can be appended to and resumed exactly once. The
rest of crawlmesh looks formats up in :data:`FORMATS`; nothing else names
one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .._exceptions import UsageError
from ._base import Feed, FeedOptions, Mode
from ._csv import CsvWriter
from ._json import JsonArrayWriter, JsonLinesWriter
from ._xml import XmlWriter

__all__ = ["FORMATS", "FeedFormat", "describe_formats", "format_for", "format_named"]

Factory = Callable[[str | os.PathLike[str] | BinaryIO, Mode, FeedOptions], Feed]


@dataclass(frozen=True)
class FeedFormat:
    """One feed format.

    Attributes:
        name: what ``-t`` and the ``format`` key call it.
        extensions: file name endings that choose it (lower case, with the dot).
        open: makes its writer (a target, a :data:`Mode`, the options).
        appends: adding to a non-empty file keeps it valid (JSON lines,
            CSV); a format with a footer (a JSON array, XML) refuses it.
        resumes: cutting back to a committed length and carrying on gives
            each item once (with ``--jobdir`` / ``--backend``).
    """

    name: str
    extensions: tuple[str, ...]
    open: Factory
    appends: bool
    resumes: bool = True


FORMATS: tuple[FeedFormat, ...] = (
    FeedFormat(
        "jsonl",
        (".jsonl", ".jl"),
        lambda target, mode, options: JsonLinesWriter(target, mode=mode, options=options),
        appends=True,
    ),
    FeedFormat(
        "json",
        (".json",),
        lambda target, mode, options: JsonArrayWriter(target, mode=mode, options=options),
        appends=False,
    ),
    FeedFormat(
        "csv",
        (".csv",),
        lambda target, mode, options: CsvWriter(target, mode=mode, options=options),
        appends=True,
    ),
    FeedFormat(
        "xml",
        (".xml",),
        lambda target, mode, options: XmlWriter(target, mode=mode, options=options),
        appends=False,
    ),
)
"""Every format; the first is stdout's."""


def describe_formats() -> str:
    """The formats and their extensions, for messages."""
    return ", ".join(f"{f.name} ({' '.join(f.extensions)})" for f in FORMATS)


def format_named(name: str) -> FeedFormat:
    """The format called ``name``.

    Raises:
        UsageError: there is none (listing the formats).
    """
    for fmt in FORMATS:
        if fmt.name == name.lower():
            return fmt
    raise UsageError(f"unknown feed format {name!r} (formats: {describe_formats()})")


def format_for(path: str, forced: str = "") -> FeedFormat:
    """The format of a feed at ``path``: ``forced`` if given, else its
    extension's; stdout (``-``) is JSON lines unless forced.

    Raises:
        UsageError: an unknown format, or an extension no format has.
    """
    if forced:
        return format_named(forced)
    if path == "-":
        return FORMATS[0]
    lower = path.lower()
    for fmt in FORMATS:
        if lower.endswith(fmt.extensions):
            return fmt
    raise UsageError(
        f"cannot tell the feed format of {path!r} from its extension: name one with "
        f"-t FORMAT (or the feed's format key); formats: {describe_formats()}"
    )
