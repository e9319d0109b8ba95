"""JSON feeds: JSON lines (``.jsonl``, ``.jl``) and a JSON array (``.json``).

A JSON array is ``[`` then one item per line, ``,``-separated, then ``]``:
the separator goes before each item but the first, so the file cut back to
any item's end is a valid array once the footer is written again.
"""

from __future__ import annotations

import codecs
import os
import time
from typing import Any, BinaryIO

import msgspec

from .._util._redact import redact
from ._base import FeedFile, FeedOptions, Mode, _enc_hook, to_fields

__all__ = ["ErrorRecord", "JsonArrayWriter", "JsonLinesWriter"]


def _escape_json(exc: UnicodeError) -> tuple[str, int]:
    # A character the encoding lacks, as a JSON \u escape (valid anywhere a
    # non-ASCII character can be in JSON: inside a string).
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for char in exc.object[exc.start : exc.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), exc.end


codecs.register_error("crawlmesh-json", _escape_json)


class ErrorRecord(msgspec.Struct):
    """One line of the errors file: a request (or item) that finally failed.

    Every field is on every line (``null`` when unknown: ``status`` of a
    request that got no response, ``referer`` of a start request)."""

    url: str
    kind: str
    reason: str
    method: str = "GET"
    depth: int = 0
    status: int | None = None
    referer: str | None = None
    time: float = 0.0


class _JsonFeed(FeedFile):
    """Encodes items as JSON, in the feed's encoding and field selection."""

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        mode: Mode = "overwrite",
        options: FeedOptions | None = None,
    ) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._buf = bytearray()
        super().__init__(target, mode=mode, options=options)
        self._utf8 = self.encoding == "utf-8"

    def _json(self, record: Any) -> bytes:
        fields = self.options.fields
        if fields is not None:
            record = to_fields(record, fields)
        self._buf.clear()
        self._encoder.encode_into(record, self._buf)
        data = bytes(self._buf)
        if not self._utf8:
            data = data.decode("utf-8").encode(self.encoding, "crawlmesh-json")
        return data


class JsonLinesWriter(_JsonFeed):
    """Writes JSON lines (one record a line) to a file descriptor.

    Args:
        target: a path (created or truncated; appended to if ``append``) or
            an open binary file such as ``sys.stdout.buffer``.
        append: add to the file instead of emptying it.
        mode: how the file is opened (overrides ``append``; see
            :data:`~crawlmesh._feeds._base.Mode`).
        options: the fields written and the encoding.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        append: bool = False,
        mode: Mode | None = None,
        options: FeedOptions | None = None,
    ) -> None:
        if mode is None:
            mode = "append" if append else "overwrite"
        super().__init__(target, mode=mode, options=options)

    def encode(self, record: Any) -> bytes:
        """Encode one record as a line (raises TypeError if it cannot be)."""
        return self._json(record) + b"\n"

    def write(self, record: Any) -> None:
        """Encode and write one record.

        Raises:
            TypeError: the record holds a value JSON cannot represent.
        """
        self.write_line(self.encode(record))

    def write_error(self, record: ErrorRecord) -> None:
        """Write a failed request's record, its secrets masked: known ones
        and URL credentials everywhere, secret query parameters in the
        reason only (a URL stays one that can be fetched again)."""
        if not record.time:
            record.time = time.time()
        record.reason = redact(record.reason)
        record.url = redact(record.url, params=False)
        if record.referer is not None:
            record.referer = redact(record.referer, params=False)
        self.write(record)


class JsonArrayWriter(_JsonFeed):
    """A JSON array of items, one a line (see the module)."""

    header = b"["
    footer = b"\n]\n"

    def start(self) -> None:
        super().start()
        self._next = b"\n"

    def resume_at(self, length: int) -> None:
        super().resume_at(length)
        size = self.length() or 0
        self._next = b",\n" if size > len(self.header) else b"\n"

    def encode(self, item: Any) -> bytes:
        data = self._json(item)
        indent = self.options.indent
        if indent:
            pad = b"\n" + b" " * indent
            data = b" " * indent + msgspec.json.format(data, indent=indent).replace(b"\n", pad)
        return data

    def write_line(self, line: bytes) -> None:
        super().write_line(self._next + line)
        self._next = b",\n"
