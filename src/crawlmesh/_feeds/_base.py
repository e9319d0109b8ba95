"""What every feed shares: an unbuffered file written in whole records, a
header written when the file is empty, a footer written when it closes.

A feed's :meth:`FeedFile.length` excludes its footer: the footer is written
by :meth:`FeedFile.finish` (on close, or on a second Ctrl-C just before the
process exits), after the backend committed the last length. A resumed job
cuts the file back to that length, the footer with it, carries on, and
writes the footer again at its own end.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Mapping
from typing import Any, BinaryIO, Literal, Protocol

import msgspec

__all__ = ["Feed", "FeedFile", "FeedOptions", "Mode", "to_fields"]

Mode = Literal["overwrite", "append", "resume"]
"""How a feed's file is opened: emptied; added to (refused by formats that
cannot append to a non-empty file); or continued where a crawl left it (the
backend then cuts it to what it committed)."""


class FeedOptions(msgspec.Struct, frozen=True):
    """How items are written (the ``feeds`` setting's keys, less where to).

    Attributes:
        fields: the fields exported, in this order (None: every field of
            each item; for CSV the first item's).
        encoding: the file's encoding (ASCII-compatible).
        indent: spaces per nesting level (JSON and XML; None: compact).
    """

    fields: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    indent: int | None = None


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


def to_fields(item: Any, fields: tuple[str, ...] | None) -> dict[str, Any]:
    """``item`` (a dict, dataclass, msgspec Struct, attrs class) as a dict
    of plain values, restricted to ``fields`` in their order when given
    (a field the item lacks is left out).

    Raises:
        TypeError: the item has no fields (a list, a string...) or holds a
            value with no plain form.
    """
    plain = msgspec.to_builtins(item, enc_hook=_enc_hook)
    if not isinstance(plain, dict):
        raise TypeError(f"an item must have fields (a dict, dataclass or Struct), not {plain!r}")
    if fields is None:
        return plain
    return {name: plain[name] for name in fields if name in plain}


class Feed(Protocol):
    """One feed, as the export stage writes it (:class:`FeedFile` is one)."""

    name: str
    """Its path as given (``-`` for a stream): its key in a backend's lengths."""

    def encode(self, item: Any) -> bytes:
        """One item as this feed writes it.

        Raises:
            TypeError, ValueError: the item cannot be written in this format.
        """
        ...

    def write_line(self, line: bytes) -> None:
        """Write what :meth:`encode` made (raises OSError)."""
        ...

    def length(self) -> int | None:
        """Bytes in the file, its footer excluded (None: not a regular file)."""
        ...

    def truncate(self, length: int) -> None:
        """Cut the file back to ``length`` bytes (a committed length)."""
        ...

    def finish(self) -> None:
        """Write the footer (once), leaving the file open."""
        ...

    def close(self) -> None: ...


class FeedFile:
    """A feed on a file descriptor (see the module); formats subclass it.

    Args:
        target: a path, or an open binary file such as ``sys.stdout.buffer``.
        mode: see :data:`Mode` (a stream is written as it comes).
        options: see :class:`FeedOptions`.
    """

    header = b""
    footer = b""

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        mode: Mode = "overwrite",
        options: FeedOptions | None = None,
    ) -> None:
        self.options = options or FeedOptions()
        self.encoding = codecs.lookup(self.options.encoding).name
        if isinstance(target, str | os.PathLike):
            self.name = os.fspath(target)
            # Always O_APPEND: after a cut (truncate) writes go on at the end.
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
            flags |= os.O_TRUNC if mode == "overwrite" else 0
            self._fd = os.open(target, flags, 0o644)
            self._owned = True
        else:
            self.name = "-"
            target.flush()
            self._fd = target.fileno()
            self._owned = False
        self._finished = False
        self.count = 0
        size = self.length()
        if size:
            self.resume_at(size)
        else:
            self.start()

    def text(self, text: str) -> bytes:
        """``text`` in the feed's encoding (raises UnicodeEncodeError)."""
        return text.encode(self.encoding)

    # -- what formats override ----------------------------------------------

    def start(self) -> None:
        """The file is empty: write the header."""
        if self.header:
            self._write(self.header)

    def resume_at(self, length: int) -> None:
        """The file holds ``length`` bytes of an earlier run: carry on from
        there (a footer it ends with is cut off)."""
        if self.footer and length >= len(self.footer):
            tail = os.pread(self._fd, len(self.footer), length - len(self.footer))
            if tail == self.footer:
                os.ftruncate(self._fd, length - len(self.footer))

    def encode(self, item: Any) -> bytes:
        raise NotImplementedError

    # -- the Feed protocol ------------------------------------------------------

    def write_line(self, line: bytes) -> None:
        self._write(line)
        self.count += 1

    def length(self) -> int | None:
        st = os.fstat(self._fd)
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def truncate(self, length: int) -> None:
        os.ftruncate(self._fd, length)
        if length:
            self.resume_at(length)
        else:
            self.start()

    def finish(self) -> None:
        if not self._finished and self._fd >= 0:
            self._finished = True
            if self.footer:
                self._write(self.footer)

    def close(self) -> None:
        try:
            self.finish()
        except OSError:
            pass  # (a closed pipe, a full disk: the crawl stopped for it, and said so)
        finally:
            if self._owned and self._fd >= 0:
                os.close(self._fd)
            self._fd = -1

    def _write(self, data: bytes) -> None:
        # One os.write loop per record on an unbuffered descriptor: a reader
        # (tail -f, a pipe, a crash) never sees half a record.
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _read_head(self, limit: int = 65536) -> bytes:
        """The file's first bytes (for a format that reads its header back)."""
        return os.pread(self._fd, limit, 0)
