"""Several feeds written as one: every item to every feed.

Each item is encoded for every feed before any is written, so an item one
format cannot hold (an XML-unfriendly key) is refused everywhere and the
feeds stay the same list of items. Each feed's length is kept apart (by its
name), so a backend commits, and a resume cuts, every feed to its own
length.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from .._exceptions import UsageError
from ._base import Feed, Mode
from ._spec import FeedSpec

__all__ = ["FeedSet", "open_feeds"]

log = structlog.get_logger("crawlmesh.feeds")

LEGACY_KEY = ""
"""The key of a length a job directory stored before feeds had names: the
first feed's."""


class FeedSet:
    """Feeds written together (see the module).

    Args:
        feeds: in order; the first is the one a lone length belongs to.
    """

    def __init__(self, feeds: Sequence[Feed]) -> None:
        if not feeds:
            raise ValueError("a FeedSet needs a feed")
        self.feeds = tuple(feeds)

    @property
    def names(self) -> list[str]:
        return [feed.name for feed in self.feeds]

    def encode(self, item: Any) -> list[bytes]:
        """``item`` for each feed (raises TypeError or ValueError, writing nothing)."""
        return [feed.encode(item) for feed in self.feeds]

    def write_line(self, lines: list[bytes]) -> None:
        """Write what :meth:`encode` made, each to its feed (raises OSError)."""
        for feed, line in zip(self.feeds, lines, strict=True):
            feed.write_line(line)

    def lengths(self) -> dict[str, int]:
        """Each feed's length by name (footers excluded; streams left out)."""
        out = {}
        for feed in self.feeds:
            length = feed.length()
            if length is not None:
                out[feed.name] = length
        return out

    def cut_to(self, lengths: Mapping[str, int]) -> int:
        """Cut each feed longer than its committed length back to it;
        returns the bytes cut (see :data:`LEGACY_KEY`)."""
        cut = 0
        for i, feed in enumerate(self.feeds):
            committed = lengths.get(feed.name)
            if committed is None and i == 0:
                committed = lengths.get(LEGACY_KEY)
            current = feed.length()
            if committed is not None and current is not None and current > committed:
                feed.truncate(committed)
                cut += current - committed
        return cut

    def finish(self) -> None:
        """Write every footer (an exit is coming that will not close them)."""
        for feed in self.feeds:
            feed.finish()

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()


def _mode(spec: FeedSpec, resume: bool) -> Mode:
    if resume:
        return "resume"
    return "overwrite" if spec.overwrite else "append"


def open_feeds(specs: Sequence[FeedSpec], *, resume: bool = False) -> FeedSet:
    """Open every feed (``-`` is stdout).

    Args:
        specs: the feeds.
        resume: a backend will cut them to what it committed (a resumed
            job, a shared crawl): carry on from their content whatever the
            format.

    Raises:
        UsageError: a file cannot be opened, or would be appended to by a
            format that cannot be (naming it).
    """
    opened: list[Feed] = []
    try:
        for spec in specs:
            opened.append(_open(spec, _mode(spec, resume)))
    except BaseException:
        for feed in opened:
            feed.close()
        raise
    return FeedSet(opened)


def _open(spec: FeedSpec, mode: Mode) -> Feed:
    fmt, target = spec.format, spec.target
    if target == "-":
        return fmt.open(sys.stdout.buffer, "overwrite", spec.options)
    if mode == "append" and not fmt.appends:
        try:
            size = os.path.getsize(target)
        except OSError:
            size = 0
        if size:
            raise UsageError(
                f"cannot append to {target!r}: it already holds a {fmt.name} feed and adding "
                "to it would make it invalid; -O (or overwrite = true) replaces it"
            )
    try:
        return fmt.open(target, mode, spec.options)
    except OSError as exc:
        raise UsageError(f"cannot open output file {target!r}: {exc.strerror}") from None
    except ValueError as exc:  # (a CSV file whose header row is not ours)
        raise UsageError(f"cannot append to output file: {exc}") from None
