"""stderr as a console: log lines scroll above a status block kept at the bottom.

Low layer: imports nothing from crawlmesh.

While a block is shown, each write of whole lines erases the block, writes
the lines and draws the block again below them, as one write to the
terminal, so a log line never lands inside the block and a block is never
torn by a log line. Partial lines are held until their newline arrives.

The block is drawn with three ANSI sequences only: cursor up (``ESC [ n A``)
after a carriage return, erase to the end of the line (``ESC [ K``) and
erase to the end of the screen (``ESC [ J``). Each line of the block must fit
in one row (the caller cuts them to the terminal's width, see
:meth:`Console.size`); the cursor rests at the start of the row below it.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Console", "console"]

_ERASE_LINE_END = "\x1b[K"
_ERASE_DOWN = "\x1b[J"


class Console:
    """A text stream with a status block kept below what is written to it.

    Args:
        stream: where to write (None: whatever ``sys.stderr`` is at each write).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # (Logs may come from threads; a block is drawn from the event loop.)
        self._lock = threading.RLock()
        self._block: list[str] = []
        self._partial = ""

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    @property
    def showing(self) -> bool:
        """Whether a status block is on screen."""
        return bool(self._block)

    def write(self, text: str) -> int:
        """Write ``text``; with a block shown, whole lines go above it."""
        with self._lock:
            if not self._block:
                self.stream.write(text)
                return len(text)
            head, newline, self._partial = (self._partial + text).rpartition("\n")
            if newline:
                self._emit(self._erase() + head + "\n" + self._draw())
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def size(self) -> os.terminal_size:
        """The terminal's columns and lines (``$COLUMNS``/``$LINES`` or 80x24
        when the stream is not a terminal, or for a size it reports as 0, as
        some pseudo-terminals do)."""
        try:
            columns, lines = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, ValueError, OSError):
            columns = lines = 0
        if columns > 0 and lines > 0:
            return os.terminal_size((columns, lines))
        fallback = shutil.get_terminal_size()  # ($COLUMNS/$LINES, else 80x24)
        return os.terminal_size(
            (columns if columns > 0 else fallback.columns, lines if lines > 0 else fallback.lines)
        )

    def show(self, lines: Sequence[str]) -> None:
        """Draw ``lines`` as the block, in place of the one shown (if any).

        Raises:
            OSError: the stream cannot be written (the block is forgotten).
        """
        with self._lock:
            up = self._up()
            if self._partial:
                # A line without its newline yet: end it, so the block starts a row.
                up, self._partial = self._erase() + self._partial + "\n", ""
            self._block = list(lines)
            try:
                self._emit(up + self._draw() + _ERASE_DOWN)
            except OSError:
                self._block = []
                raise

    def clear(self) -> None:
        """Erase the block (and write any held partial line); writes go
        straight through again. Does nothing when no block is shown."""
        with self._lock:
            if not self._block:
                return
            text, self._partial = self._erase() + self._partial, ""
            self._block = []
            self._emit(text)

    def _up(self) -> str:
        """From the row below the block to its first row."""
        return f"\r\x1b[{len(self._block)}A" if self._block else ""

    def _erase(self) -> str:
        return self._up() + _ERASE_DOWN if self._block else ""

    def _draw(self) -> str:
        return "".join(line + _ERASE_LINE_END + "\n" for line in self._block)

    def _emit(self, text: str) -> None:
        stream = self.stream
        stream.write(text)
        stream.flush()


console = Console()
"""The process's stderr: logs and the live status block share it."""
