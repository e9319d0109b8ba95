"""The pool's HTTP/1.1 framing, without I/O: heads, body framing, chunks and
the request bytes it refuses to write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._transport._http11 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    ChunkedDecoder,
    InvalidRequest,
    ProtocolError,
    parse_head,
    request_bytes,
)


def head(raw: bytes, *, head_request: bool = False):  # type: ignore[no-untyped-def]
    parsed = parse_head(bytearray(raw), head_request=head_request)
    assert parsed is not None
    return parsed


def test_a_head_with_its_length_and_what_follows() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Two: a\r\nx-two: b\r\n\r\nhello"
    h, used = head(raw)
    assert (h.status, h.reason, h.framing, h.length, h.keep_alive) == (
        200,
        b"OK",
        BODY_LENGTH,
        5,
        True,
    )
    assert h.headers == [(b"content-length", b"5"), (b"x-two", b"a"), (b"x-two", b"b")]
    assert raw[used:] == b"hello"


def test_an_incomplete_head_waits_and_garbage_is_refused() -> None:
    assert parse_head(bytearray(b"HTTP/1.1 200 OK\r\nContent-Le"), head_request=False) is None
    assert parse_head(bytearray(b"HTT"), head_request=False) is None
    with pytest.raises(ProtocolError, match="not an HTTP response"):
        parse_head(bytearray(b"SSH-2.0-OpenSSH"), head_request=False)
    with pytest.raises(ProtocolError, match="invalid status line"):
        parse_head(bytearray(b"HTTP/1.1 2000 OK\r\n\r\n"), head_request=False)
    with pytest.raises(ProtocolError, match="invalid header line"):
        parse_head(bytearray(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), head_request=False)


@pytest.mark.parametrize(
    ("raw", "framing", "keep_alive"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", BODY_NONE, True),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", BODY_NONE, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BODY_CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BODY_CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", BODY_UNTIL_CLOSE, False),
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            BODY_CHUNKED,
            True,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", BODY_UNTIL_CLOSE, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", BODY_LENGTH, False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", BODY_LENGTH, False),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\n", BODY_LENGTH, True),  # bare LFs
        (b"HTTP/1.1 200\r\nContent-Length: 2, 2\r\n\r\n", BODY_LENGTH, True),
    ],
)
def test_body_framing(raw: bytes, framing: int, keep_alive: bool) -> None:
    h, _ = head(raw)
    assert (h.framing, h.keep_alive) == (framing, keep_alive)


def test_a_head_request_has_no_body_whatever_the_length_says() -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", head_request=True)
    assert h.framing == BODY_NONE


@pytest.mark.parametrize("value", [b"5, 6", b"-1", b"0x10", b"1_0", b" "])
def test_an_unframeable_content_length_is_an_error(value: bytes) -> None:
    with pytest.raises(ProtocolError, match="Content-Length"):
        parse_head(
            bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n"),
            head_request=False,
        )


def test_folded_lines_are_unfolded() -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nContent-Length: 0\r\n\r\n")
    assert h.headers[0] == (b"x-a", b"one two")


def _chunked(parts: list[bytes], trailer: bytes = b"") -> bytes:
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n" + trailer + b"\r\n"


@given(
    st.lists(st.binary(min_size=1, max_size=50), max_size=8),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=40),
)
def test_chunks_decode_whatever_the_packet_boundaries(parts: list[bytes], cuts: list[int]) -> None:
    wire = _chunked(parts, trailer=b"X-Trailer: 1\r\n") + b"NEXT"
    decoder, buf, out, pos = ChunkedDecoder(), bytearray(), [], 0
    step = 0
    while not decoder.done and pos < len(wire):
        cut = cuts[step % len(cuts)]
        step += 1
        buf += wire[pos : pos + cut]
        pos += cut
        out.append(decoder.decode(buf))
    assert decoder.done
    assert b"".join(out) == b"".join(parts)
    assert bytes(buf) + wire[pos:] == b"NEXT"  # what follows is left alone


@pytest.mark.parametrize(
    "wire",
    [b"zz\r\n", b"-1\r\n", b"0x5\r\nhello\r\n", b"5\r\nhelloXX\r\n", b"1" * 5000],
)
def test_malformed_chunks_are_errors(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedDecoder().decode(bytearray(wire))


def test_request_bytes_and_what_cannot_be_sent() -> None:
    assert request_bytes(b"GET", b"/a?b=1", [(b"Host", b"x")], b"") == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert request_bytes(b"POST", b"/", [(b"Content-Length", b"2")], b"hi").endswith(b"\r\n\r\nhi")
    for name, value in [
        (b"X-Bad", b"a\r\nInjected: 1"),
        (b"X-Bad", b" padded"),
        (b"X-Bad", b"nul\x00"),
        (b"Bad Name", b"v"),
        (b"Bad:Name", b"v"),
    ]:
        with pytest.raises(InvalidRequest):
            request_bytes(b"GET", b"/", [(name, value)], b"")
    with pytest.raises(InvalidRequest, match="target"):
        request_bytes(b"GET", b"/a b", [], b"")
    with pytest.raises(InvalidRequest, match="method"):
        request_bytes(b"GET /x", b"/", [], b"")
