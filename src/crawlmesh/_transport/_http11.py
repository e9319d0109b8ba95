"""HTTP/1.1 client framing without I/O: request bytes out, response heads and
bodies in.

h11 checks every byte through regular expressions and events; a crawler's
pool needs less: write a request whose header lines cannot smuggle a second
one, read a response head, and know where its body ends (RFC 9112 §6.3). It
is lenient with what servers send, as browsers are: a bare LF ends a line,
obsolete line folding is unfolded, header values are taken as they come,
except for NUL and a bare CR (refused, as by h11 and the Fetch standard: a
value that different parsers split differently). Framing errors that would
leave the connection out of step (a bad Content-Length, a bad chunk size, a
transfer coding it cannot undo) are errors, and a response framed two ways
(Transfer-Encoding and Content-Length) is read by its Transfer-Encoding and
its connection is not kept.

Every search for a line's or a head's end resumes where the last one stopped:
a head or a chunk line dripped a byte at a time costs linear time.

h11 is the outside oracle (tests/transport/test_http11_oracle.py): no head
it refuses is accepted here, except on purpose: transfer codings other than
chunked (gzip, x-gzip, deflate) are read, for the body reader to undo; and
the framing headers of a response without a body (HEAD, 1xx, 204, 304) are
not checked.
"""

from __future__ import annotations

import re

from .._exceptions import TransportSignal

__all__ = [
    "BODY_CHUNKED",
    "BODY_LENGTH",
    "BODY_NONE",
    "BODY_UNTIL_CLOSE",
    "MAX_HEAD",
    "TRANSFER_CODINGS",
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
# The end of the last line, then the empty line (group 1).
_HEAD_END = re.compile(rb"\r?\n(\r?\n)")
_STATUS = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?:[ \t]([^\r\n]*))?\Z")
_MAX_CHUNK_LINE = 4096
MAX_HEAD = 64 * 1024
"""The most bytes a response head, or a chunked body's trailers, may take."""
TRANSFER_CODINGS = frozenset({b"gzip", b"x-gzip", b"deflate"})
"""Transfer codings other than chunked that a body may come in: the reader
(crawlmesh's body decoder) undoes them, bounded as Content-Encoding is."""
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")


class ProtocolError(TransportSignal):
    """The server's bytes are not an HTTP/1.x response this client can frame."""


class InvalidRequest(TransportSignal):
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

    __slots__ = (
        "framing",
        "headers",
        "keep_alive",
        "length",
        "reason",
        "status",
        "transfer_codings",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        framing: int,
        length: int,
        keep_alive: bool,
        transfer_codings: tuple[bytes, ...] = (),
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        """(lower-case name, value) in the order received."""
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive
        self.transfer_codings = transfer_codings
        """The codings of the body other than chunked, in the order applied
        (lower-case, each one of :data:`TRANSFER_CODINGS`): to undo, last
        first."""


def parse_head(buf: bytearray, *, head_request: bool, scanned: int = 0) -> tuple[Head, int] | None:
    """Parse the response head at the start of ``buf``.

    Args:
        buf: the bytes received so far.
        head_request: the request was HEAD (the response has no body).
        scanned: how many bytes at the start of ``buf`` an earlier call
            already searched without finding the head's end (that call
            returned None): the search resumes there, so a head that comes
            a byte at a time is not searched again from the start each time.

    Returns:
        The head and the number of bytes it took, or None if ``buf`` does
        not hold a whole head yet.

    Raises:
        ProtocolError: not an HTTP/1.x response, or unframeable.
    """
    # The end is at most 4 bytes (CR LF CR LF): one that was not found
    # before ends in the new bytes.
    end = _HEAD_END.search(buf, max(0, scanned - 3))
    if end is None:
        if buf and not b"HTTP/".startswith(bytes(buf[:5])):
            raise ProtocolError(f"not an HTTP response: {bytes(buf[:40])!r}")
        return None
    # Every line with its end: the CR of a CR LF is the line's own.
    raw = bytes(buf[: end.start(1)])
    if b"\0" in raw:
        raise ProtocolError("a NUL byte in the response head")
    lines = [line[:-1] if line[-1:] == b"\r" else line for line in raw.split(b"\n")[:-1]]
    status_line = lines[0]
    if b"\r" in status_line:
        raise ProtocolError(f"a bare CR in the status line {status_line[:100]!r}")
    match = _STATUS.match(status_line)
    if match is None:
        raise ProtocolError(f"invalid status line {status_line[:100]!r}")
    major, minor, code, reason = match.groups()
    status = int(code)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if b"\r" in line:
            # A CR not followed by LF: some parsers end the line there.
            raise ProtocolError(f"a bare CR in header line {line[:100]!r}")
        if line[:1] in (b" ", b"\t"):
            # Obsolete line folding: a continuation of the previous value.
            if not headers:
                raise ProtocolError("a folded header line before any header")
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" "))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise ProtocolError(f"invalid header line {line[:100]!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    keep_alive = (major, minor) == (b"1", b"1")
    return _framed(status, reason or b"", headers, keep_alive, head_request), end.end()


def _framed(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    keep_alive: bool,
    head_request: bool,
) -> Head:
    """The head, with how its body is framed and whether the connection can
    be kept (``keep_alive``: the version allows it) read from ``headers``.

    Raises:
        ProtocolError: the framing headers are invalid or contradictory.
    """
    length = 0
    codings: list[bytes] | None = None
    lengths: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            if b"close" in value.lower():
                keep_alive = False
        elif name == b"transfer-encoding":
            if codings is None:
                codings = []
            # A list: empty elements are allowed (RFC 9110 5.6.1).
            codings += [c for c in (c.strip(b" \t").lower() for c in value.split(b",")) if c]
        elif name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
    bodiless = head_request or 100 <= status < 200 or status in (204, 304)
    # Checked beside Transfer-Encoding too, which it does not frame: a bad
    # one is a broken (or smuggling) response.
    if lengths and not bodiless and (len(lengths) > 1 or not all(v.isdigit() for v in lengths)):
        raise ProtocolError(f"invalid Content-Length {b', '.join(sorted(lengths))[:100]!r}")
    transfer: tuple[bytes, ...] = ()
    if codings is not None:
        if lengths:
            # Framed two ways: read by Transfer-Encoding (RFC 9112 6.3), and
            # never trust the connection again (a request smuggling vector).
            keep_alive = False
        if not bodiless:
            chunked = _check_codings(codings)
            transfer = tuple(codings[:-1] if chunked else codings)
            if not chunked:
                keep_alive = False  # framed by the end of the connection
    if bodiless:
        framing = BODY_NONE
    elif codings is not None:
        framing = BODY_CHUNKED if codings[-1] == b"chunked" else BODY_UNTIL_CLOSE
    elif lengths:
        framing, length = BODY_LENGTH, int(lengths.pop())
    else:
        framing, keep_alive = BODY_UNTIL_CLOSE, False
    return Head(status, reason, headers, framing, length, keep_alive, transfer)


def _check_codings(codings: list[bytes]) -> bool:
    """Whether the body's transfer codings end with chunked.

    Raises:
        ProtocolError: no coding, chunked before the end (or twice), or a
            coding this client cannot undo (RFC 9112 6.1: it must not pass
            the still-encoded bytes on as the body).
    """
    if not codings:
        raise ProtocolError("an empty Transfer-Encoding")
    if b"chunked" in codings[:-1]:
        raise ProtocolError(
            f"chunked is not the last transfer coding: {b', '.join(codings)[:100]!r}"
        )
    for coding in codings:
        if coding != b"chunked" and coding not in TRANSFER_CODINGS:
            raise ProtocolError(f"unsupported transfer coding {coding[:40]!r}")
    return codings[-1] == b"chunked"


class ChunkedDecoder:
    """Takes chunked-encoded bytes off the front of a buffer."""

    __slots__ = ("_left", "_scanned", "_state", "_trailers", "done")

    _SIZE, _DATA, _CRLF, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._left = 0
        # Bytes at the front of the buffer already searched for a newline.
        self._scanned = 0
        # Bytes of trailer lines so far: bounded as a head is.
        self._trailers = 0
        self.done = False

    def decode(self, buf: bytearray) -> bytes:
        """Remove what can be decoded from ``buf`` and return its data (maybe
        nothing: then more bytes are needed, unless :attr:`done`).

        Between calls only the caller's new bytes may be added to the end of
        ``buf``.

        Raises:
            ProtocolError: a malformed chunk size or chunk end, a chunk line
                longer than 4 KiB, or trailers larger than :data:`MAX_HEAD`.
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
            newline = buf.find(b"\n", self._scanned)
            limit = MAX_HEAD - self._trailers if state == self._TRAILER else _MAX_CHUNK_LINE
            if newline < 0:
                if len(buf) > limit:
                    if state == self._TRAILER:
                        raise ProtocolError("trailers larger than 64 KiB")
                    raise ProtocolError("a chunk line longer than 4 KiB")
                self._scanned = len(buf)
                break
            self._scanned = 0
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
            else:
                self._trailers += newline + 1
                if self._trailers > MAX_HEAD:
                    raise ProtocolError("trailers larger than 64 KiB")
        return b"".join(out)
