"""Export: items and error records as JSON lines.

Each record is encoded whole and written with one ``os.write`` loop on an
unbuffered descriptor, so a reader (``tail -f``, a pipe, a crash) never sees
a torn line and sees each line as soon as it is produced.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from typing import Any, BinaryIO

import msgspec

from .._util._redact import redact

__all__ = ["ErrorRecord", "JsonLinesWriter"]


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


def _enc_hook(obj: Any) -> Any:
    # Sets and the like are common in scraped items; msgspec encodes dicts,
    # Structs, dataclasses and attrs classes itself. A pydantic model (or
    # anything with its model_dump) and other mappings come as what they
    # hold; anything else is refused.
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, bytes | bytearray):
        return obj.decode("utf-8", "replace")
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


class JsonLinesWriter:
    """Writes JSON lines to a file descriptor.

    Args:
        target: a path (created or truncated; appended to if ``append``) or
            an open binary file such as ``sys.stdout.buffer``.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, *, append: bool = False) -> None:
        if isinstance(target, str | os.PathLike):
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
            self._fd = os.open(target, flags, 0o644)
            self._owned = True
        else:
            target.flush()
            self._fd = target.fileno()
            self._owned = False
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._buf = bytearray()
        self.count = 0

    def encode(self, record: Any) -> bytes:
        """Encode one record as a line (raises TypeError if it cannot be)."""
        self._buf.clear()
        self._encoder.encode_into(record, self._buf)
        self._buf += b"\n"
        return bytes(self._buf)

    def write_line(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.count += 1

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

    def length(self) -> int | None:
        """Bytes in the file, or None when it is not a regular file (a pipe)."""
        st = os.fstat(self._fd)
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def truncate(self, length: int) -> None:
        """Cut the file to ``length`` bytes (resuming a job: see ``--jobdir``)."""
        os.ftruncate(self._fd, length)

    def close(self) -> None:
        if self._owned and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
