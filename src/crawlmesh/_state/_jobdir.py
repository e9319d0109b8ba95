"""Pause and resume on one machine: a crawl's state in SQLite (``--jobdir``).

``DIR/state.sqlite`` (WAL mode, one connection, one open transaction) holds:

* ``queue``: every request the crawl accepted and has not finished, as a
  record naming its callback (a spider method) instead of holding it;
* ``seen``: the fingerprint of every request admitted (the dupe filter, so
  the fingerprints stay on disk, 16 bytes each plus the B-tree's overhead,
  instead of Python objects);
* ``meta``: the committed length of each feed (by its path as given:
  ``feed_lengths``; a job directory from before feeds had names holds one
  ``items_length``, the first feed's), whether ``start()`` ran to its end,
  and the counters of the stats.

A finished page's items are written as one batch; then its row is deleted
and the transaction committed with the feeds' new lengths, with no
``await`` in between. After a crash or a SIGKILL, resuming truncates each
feed to its last committed length and queues again every request not
finished (those whose items were cut included), so each page's items appear
once. Requests a page yielded were committed with or before it: a page
fetched again yields them again and the dupe filter drops them.

A commit survives the process being killed (WAL with ``synchronous=NORMAL``;
only a power cut may lose the last ones).
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import structlog

from .._exceptions import SettingsError
from .._feeds import LEGACY_KEY
from .._observe import StatsCollector
from .._request import Request
from .._spider import Spider
from ._backend import EngineLink, Resume
from ._records import RequestCodec

__all__ = ["JobDir"]

log = structlog.get_logger("crawlmesh.jobdir")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, domain TEXT NOT NULL, request BLOB);
CREATE TABLE IF NOT EXISTS seen (fp BLOB PRIMARY KEY) WITHOUT ROWID;
"""
_COUNTERS = ("pages", "bytes", "scheduled")
_COUNTER_MAPS = ("errors", "filtered", "status")


class JobDir:
    """One crawl's durable state; also its dupe filter.

    Args:
        directory: created if missing.
        spider: whose methods stored callbacks name.

    Raises:
        SettingsError: the directory or its database cannot be opened.
    """

    def __init__(self, directory: str | os.PathLike[str], spider: Spider) -> None:
        self.path = Path(directory)
        self._codec = RequestCodec(spider, f"--jobdir {os.fspath(directory)}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path / "state.sqlite", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"--jobdir {os.fspath(directory)}: {exc}") from None
        self._db = db
        self.resumed = db.execute("SELECT count(*) FROM meta").fetchone()[0] > 0
        self._seen = db.execute("SELECT count(*) FROM seen").fetchone()[0]
        # id(request) -> (request, its queue row). Holding the request keeps
        # its id from being reused by another while the row is open.
        self._rows: dict[int, tuple[Request, int]] = {}
        self._lengths = self.lengths  # (what is stored: written again only when changed)
        db.execute("BEGIN")

    # -- the dupe filter ---------------------------------------------------------

    def add(self, fp: bytes) -> bool:
        """Record ``fp``; True if it was new."""
        new = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (fp,)).rowcount == 1
        self._seen += new
        return new

    def __len__(self) -> int:
        return int(self._seen)

    # -- the queue -------------------------------------------------------------

    # -- the Backend protocol -----------------------------------------------

    keeps_unfinished = True  # for a resume
    journals = True
    shared = False
    mesh_share = None  # one process: the balancer keeps its own

    @property
    def dupefilter(self) -> JobDir:
        return self

    @asynccontextmanager
    async def connect(self, link: EngineLink, stats: StatsCollector) -> AsyncIterator[Resume]:
        self.restore_stats(stats)
        pending = self.pending()
        if self.resumed:
            log.info(
                "resuming",
                jobdir=str(self.path),
                queued=len(pending),
                seen=len(self),
                start_done=self.start_done,
            )
        yield Resume(
            resumed=self.resumed,
            lengths=self.lengths,
            pending=pending,
            start_done=self.start_done,
        )

    def queued(self, domain: str, request: Request, fp: bytes = b"", *, seed: bool = False) -> bool:
        """Store ``request`` (once: a request queued again keeps its row);
        the engine queues it too.

        Raises:
            NotPersistable: see :mod:`crawlmesh._state._records`.
        """
        if id(request) in self._rows:
            return True
        blob = self._codec.encode(request)
        row = self._db.execute(
            "INSERT INTO queue (domain, request) VALUES (?, ?)", (domain, blob)
        ).lastrowid
        assert row is not None
        self._rows[id(request)] = (request, row)
        return True

    def seen(self, fp: bytes) -> None:
        pass  # the dupe filter is this store's own table: add() recorded it

    async def seen_first(self, fp: bytes) -> bool:
        return True  # one process: the dupe filter, which said new, is the crawl's

    def finished(self, request: Request) -> None:
        """Forget ``request``: it ended (fetched and handled, or failed)."""
        entry = self._rows.pop(id(request), None)
        if entry is not None:
            self._db.execute("DELETE FROM queue WHERE id = ?", (entry[1],))

    def commit(self, lengths: Mapping[str, int], stats: StatsCollector | None = None) -> None:
        """Commit what changed, with each feed's length (a stream has none)."""
        db = self._db
        if lengths != self._lengths:
            self._lengths = dict(lengths)
            self._put("feed_lengths", self._lengths)
        if stats is not None:
            # With every commit, so the counts match what was committed.
            self.save_stats(stats)
        db.execute("COMMIT")
        db.execute("BEGIN")

    def save_stats(self, stats: StatsCollector) -> None:
        """Store the counters that carry over a resume."""
        data: dict[str, Any] = {name: getattr(stats, name) for name in _COUNTERS}
        data.update({name: dict(getattr(stats, name)) for name in _COUNTER_MAPS})
        data["items"] = stats.items
        self._put("stats", data)

    def mark_start_done(self) -> None:
        self._put("start_done", True)

    def pause(self, domain: str, seconds: float) -> None:
        pass  # one process: the engine's own pause is all there is

    async def gate(self, domain: str, key: str, rate: float, burst: int) -> float:
        return 0.0  # one process: the engine's own limiter is all there is

    async def room(self) -> None:
        pass  # stored as they come

    async def run(self) -> None:
        pass  # nothing runs in the background

    @property
    def drained(self) -> bool:
        return True  # nothing is queued but in this process

    async def aclose(self, stats: StatsCollector, lengths: Mapping[str, int]) -> None:
        self.close(stats, lengths)
        return None  # one process: its stats are the crawl's

    def close(self, stats: StatsCollector, lengths: Mapping[str, int]) -> None:
        """Save the stats, commit and close."""
        self.save_stats(stats)
        self.commit(lengths)
        self._db.execute("COMMIT")
        self._db.close()

    # -- resuming --------------------------------------------------------------

    @property
    def start_done(self) -> bool:
        return bool(self._get("start_done", False))

    @property
    def lengths(self) -> dict[str, int]:
        """Each feed's committed length, by name (see the module)."""
        value = self._get("feed_lengths", None)
        if value is not None:
            return {str(name): int(length) for name, length in value.items()}
        legacy = self._get("items_length", None)
        return {} if legacy is None else {LEGACY_KEY: int(legacy)}

    def restore_stats(self, stats: StatsCollector) -> None:
        """Add the counters of earlier runs to ``stats``."""
        data = self._get("stats", None)
        if not data:
            return
        for name in _COUNTERS:
            setattr(stats, name, getattr(stats, name) + int(data.get(name, 0)))
        for name in _COUNTER_MAPS:
            counter: Counter[Any] = getattr(stats, name)
            for key, value in data.get(name, {}).items():
                counter[int(key) if name == "status" else key] += value
        stats.items += int(data.get("items", 0))
        stats.pages_resumed += int(data.get("pages", 0))

    def pending(self) -> list[tuple[str, Request]]:
        """Every stored request not finished, in the order they were queued.

        Raises:
            SettingsError: a stored callback names a method the spider no
                longer has.
        """
        out: list[tuple[str, Request]] = []
        rows = self._db.execute("SELECT id, domain, request FROM queue ORDER BY id").fetchall()
        for row, domain, blob in rows:
            request = self._codec.decode(blob)
            self._rows[id(request)] = (request, row)
            out.append((domain, request))
        return out

    def _put(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, msgspec.json.encode(value))
        )

    def _get(self, key: str, default: Any) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else msgspec.json.decode(row[0])
