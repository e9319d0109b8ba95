"""A minimal terminal emulator: enough of VT100 to replay what crawlmesh
writes to stderr and look at the screen afterwards.

It knows printable text, carriage return, line feed (which returns the
carriage too, as a tty's default ``onlcr`` makes it), automatic wrapping at
the right margin (deferred, as xterm does), cursor up (``ESC [ n A``),
erase to the end of the line (``ESC [ K``) or screen (``ESC [ J``), and
colours (``ESC [ ... m``, ignored). Anything else fails the test: the live
status must use nothing a plain terminal lacks. The screen has no bottom
(nothing scrolls away), so the whole session stays inspectable.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])")


class Terminal:
    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.rows: list[list[str]] = [[]]
        self.soft: list[bool] = [False]  # the row continues the one above (a wrap)
        self.row = 0
        self.col = 0
        self.ups = 0
        self.snapshots: list[list[str]] = []
        """The screen's rows after each erase to the end of the screen."""

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                m = _ESCAPE.match(text, i)
                assert m is not None, f"unknown escape sequence {text[i : i + 8]!r}"
                self._control(m[1], m[2])
                i = m.end()
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":  # (and a carriage return, as a tty's onlcr adds)
                self._move_to(self.row + 1, soft=False)
                self.col = 0
            else:
                assert char.isprintable(), f"unexpected control character {char!r}"
                self._put(char)
            i += 1

    def _move_to(self, row: int, *, soft: bool) -> None:
        while len(self.rows) <= row:
            self.rows.append([])
            self.soft.append(False)
        self.row = row
        self.soft[row] = soft

    def _put(self, char: str) -> None:
        if self.col >= self.columns:  # the wrap deferred from the last column
            self._move_to(self.row + 1, soft=True)
            self.col = 0
        line = self.rows[self.row]
        line.extend(" " * (self.col + 1 - len(line)))
        line[self.col] = char
        self.col += 1

    def _control(self, params: str, final: str) -> None:
        if final == "m":
            return
        assert ";" not in params, f"unexpected parameters {params!r} for {final}"
        if final == "A":
            self.ups += 1
            self.row = max(0, self.row - int(params or 1))
            self.col = min(self.col, self.columns - 1)
        elif final == "K" and not params:
            del self.rows[self.row][self.col :]
        elif final == "J" and not params:
            del self.rows[self.row][self.col :]
            del self.rows[self.row + 1 :]
            del self.soft[self.row + 1 :]
            self.snapshots.append(self.screen())
        else:
            raise AssertionError(f"unexpected escape sequence ESC[{params}{final}")

    def screen(self) -> list[str]:
        """Each row's text."""
        return ["".join(row).rstrip() for row in self.rows]

    def lines(self) -> list[str]:
        """The screen's logical lines: wrapped rows joined again, the empty
        row the cursor rests on dropped."""
        out: list[str] = []
        for row, soft in zip(self.rows, self.soft, strict=True):
            if soft and out:
                out[-1] += "".join(row)
            else:
                out.append("".join(row))
        out = [line.rstrip() for line in out]
        while out and not out[-1]:
            out.pop()
        return out
