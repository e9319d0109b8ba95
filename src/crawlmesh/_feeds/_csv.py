"""A CSV feed: a header row, then a row per item.

The columns are the ``fields`` setting's, else the first item's keys (or,
appending to a CSV file, its header row's). Scrapy drops the keys a later
item adds without a word; here each such key is logged once when first
seen and counted, and the counts are logged when the feed closes (list the
columns in ``fields`` to keep them). A value that is not a string is
written as JSON (``3``, ``true``, ``["a", "b"]``); a missing one or None is
an empty cell.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from typing import Any, BinaryIO

import msgspec
import structlog

from ._base import FeedFile, FeedOptions, Mode, to_fields

__all__ = ["CsvWriter"]

log = structlog.get_logger("crawlmesh.feeds")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


class CsvWriter(FeedFile):
    """Writes items as CSV rows (see the module)."""

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        mode: Mode = "overwrite",
        options: FeedOptions | None = None,
    ) -> None:
        self.columns: tuple[str, ...] | None = None
        self._pending: tuple[str, ...] | None = None  # the columns of the row encoded last
        self.dropped: Counter[str] = Counter()
        """Keys left out because they are not columns, and how often."""
        super().__init__(target, mode=mode, options=options)

    def start(self) -> None:
        self.columns = self.options.fields  # (else the first item's, when it comes)
        if self.columns is not None:
            self._write(self._row(list(self.columns)))

    def resume_at(self, length: int) -> None:
        head = self._read_head()
        end = head.find(b"\n")
        if end < 0:
            raise ValueError(f"{self.name}: no CSV header row to append under")
        row = next(csv.reader([head[:end].decode(self.encoding)]))
        fields = self.options.fields
        if fields is not None and tuple(row) != fields:
            raise ValueError(
                f"{self.name}: its header row {row} is not the fields setting's {list(fields)}"
            )
        self.columns = tuple(row)

    def _row(self, values: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(values)
        return self.text(out.getvalue())

    def encode(self, item: Any) -> bytes:
        plain = to_fields(item, self.options.fields)
        columns = self.columns
        header = b""
        if columns is None:
            columns = tuple(plain)
            header = self._row(list(columns))
        self._pending = columns
        for key in plain.keys() - set(columns):
            if not self.dropped[key]:
                log.warning(
                    "csv feed: a key not in the header row is left out", feed=self.name, key=key
                )
            self.dropped[key] += 1
        return header + self._row([_cell(plain.get(name)) for name in columns])

    def write_line(self, line: bytes) -> None:
        super().write_line(line)
        self.columns = self._pending

    def close(self) -> None:
        if self.dropped:
            log.warning(
                "csv feed: keys left out (not in the header row)",
                feed=self.name,
                dropped=dict(self.dropped),
            )
        super().close()
