"""HTTP/1.1 client framing without I/O: request bytes out, response heads and
bodies in.

h11 checks every byte through regular expressions and events; a crawler's
pool needs less: write a request whose header lines cannot smuggle a second
one, read a response head, and know where its body ends (RFC 9112 §6.3). It
is lenient with what servers send, as browsers are: a bare LF ends a line,
obsolete line folding is unfolded, header values are taken as they come.
Framing errors that would leave the connection out of step (a bad
Content-Length, a bad chunk size) are errors.
"""

from __future__ import annotations

import re

__all__ = [
    "BODY_CHUNKED",
    "BODY_LENGTH",
    "BODY_NONE",
    "BODY_UNTIL_CLOSE",
    "ChunkedDecoder",
    "Head",
    "InvalidRequest",
    "ProtocolError",
    "parse_head",
    "request_bytes",
]

BODY_NONE = 0
BODY_LENGTH = 1
BODY_CHUNKED = 2
BODY_UNTIL_CLOSE = 3

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+\Z")
# A field value: visible characters (and obs-text), single spaces or tabs
# between them, none around them (h11's rule: nothing a header line could be
# split or smuggled on).
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?\Z")
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?:[ \t]([^\r\n]*))?\r?\Z")
_MAX_CHUNK_LINE = 4096
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.x response this client can frame."""


class InvalidRequest(Exception):
    """A request that cannot be written safely (a header with CR or LF, ...)."""


def request_bytes(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """A request's bytes; ``headers`` must hold Host, and Content-Length when
    there is a body.

    Raises:
        InvalidRequest: the method, target or a header would not be one line.
    """
    if not _TOKEN.match(method):
        raise InvalidRequest(f"invalid method {method!r}")
    if not _TARGET.match(target):
        raise InvalidRequest(f"invalid request target {target[:200]!r}")
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.match(name):
            raise InvalidRequest(f"invalid header name {name[:100]!r}")
        if not _VALUE.match(value):
            raise InvalidRequest(f"invalid value for header {name.decode('latin-1')!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


class Head:
    """A response head and how its body is framed."""

    __slots__ = ("framing", "headers", "keep_alive", "length", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        framing: int,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        """(lower-case name, value) in the order received."""
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive


def parse_head(buf: bytearray, *, head_request: bool) -> tuple[Head, int] | None:
    """Parse the response head at the start of ``buf``.

    Returns:
        The head and the number of bytes it took, or None if ``buf`` does
        not hold a whole head yet.

    Raises:
        ProtocolError: not an HTTP/1.x response, or unframeable.
    """
    end = _HEAD_END.search(buf)
    if end is None:
        if buf and not b"HTTP/".startswith(bytes(buf[:5])):
            raise ProtocolError(f"not an HTTP response: {bytes(buf[:40])!r}")
        return None
    lines = bytes(buf[: end.start()]).split(b"\n")
    status_line = lines[0]
    match = _STATUS.match(status_line)
    if match is None:
        raise ProtocolError(f"invalid status line {status_line[:100]!r}")
    major, minor, code, reason = match.groups()
    status = int(code)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[-1:] == b"\r":
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            # Obsolete line folding: a continuation of the previous value.
            if not headers:
                raise ProtocolError("a folded header line before any header")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise ProtocolError(f"invalid header line {line[:100]!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    keep_alive = (major, minor) == (b"1", b"1")
    length = 0
    chunked = False
    lengths: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            if b"close" in value.lower():
                keep_alive = False
        elif name == b"transfer-encoding":
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            if not chunked:
                keep_alive = False  # framed by the end of the connection
        elif name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
    if head_request or 100 <= status < 200 or status in (204, 304):
        framing = BODY_NONE
    elif any(name == b"transfer-encoding" for name, _ in headers):
        framing = BODY_CHUNKED if chunked else BODY_UNTIL_CLOSE
    elif lengths:
        if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
            raise ProtocolError(f"invalid Content-Length {b', '.join(sorted(lengths))[:100]!r}")
        framing, length = BODY_LENGTH, int(lengths.pop())
    else:
        framing, keep_alive = BODY_UNTIL_CLOSE, False
    return Head(status, reason or b"", headers, framing, length, keep_alive), end.end()


class ChunkedDecoder:
    """Takes chunked-encoded bytes off the front of a buffer."""

    __slots__ = ("_left", "_state", "done")

    _SIZE, _DATA, _CRLF, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._left = 0
        self.done = False

    def decode(self, buf: bytearray) -> bytes:
        """Remove what can be decoded from ``buf`` and return its data (maybe
        nothing: then more bytes are needed, unless :attr:`done`).

        Raises:
            ProtocolError: a malformed chunk size or chunk end.
        """
        out: list[bytes] = []
        while not self.done:
            state = self._state
            if state == self._DATA:
                if not buf:
                    break
                take = min(self._left, len(buf))
                out.append(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if not self._left:
                    self._state = self._CRLF
                continue
            newline = buf.find(b"\n")
            if newline < 0:
                if len(buf) > _MAX_CHUNK_LINE:
                    raise ProtocolError("a chunk line longer than 4 KiB")
                break
            line = bytes(buf[:newline]).rstrip(b"\r")
            del buf[: newline + 1]
            if state == self._SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _CHUNK_SIZE.match(size):
                    raise ProtocolError(f"invalid chunk size {line[:40]!r}")
                self._left = int(size, 16)
                self._state = self._DATA if self._left else self._TRAILER
            elif state == self._CRLF:
                if line:
                    raise ProtocolError("chunk data longer than its size")
                self._state = self._SIZE
            elif not line:  # the blank line after the trailers
                self.done = True
        return b"".join(out)
