"""Export records: where the engine's item and error writers come from
(they live in :mod:`crawlmesh._feeds`; the names stay importable here)."""

from __future__ import annotations

from .._feeds import ErrorRecord, Feed, FeedSet, JsonLinesWriter

__all__ = ["ErrorRecord", "Feed", "FeedSet", "JsonLinesWriter", "as_feedset"]


def as_feedset(items: Feed | FeedSet) -> FeedSet:
    """A lone feed (a :class:`JsonLinesWriter` a library user opened) as a set of one."""
    return items if isinstance(items, FeedSet) else FeedSet([items])
