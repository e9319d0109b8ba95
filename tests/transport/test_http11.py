"""The pool's HTTP/1.1 framing, without I/O: heads, body framing, chunks and
the request bytes it refuses to write."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh._transport._http11 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    MAX_HEAD,
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
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", BODY_CHUNKED, True),
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3), and a
        # response framed two ways leaves its connection unusable.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            BODY_CHUNKED,
            False,
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
@pytest.mark.parametrize("te", [b"", b"Transfer-Encoding: chunked\r\n"])
def test_an_unframeable_content_length_is_an_error(value: bytes, te: bytes) -> None:
    # Beside Transfer-Encoding too (as h11 has it): a sign of a broken or
    # smuggling response, though the chunks frame the body.
    with pytest.raises(ProtocolError, match="Content-Length"):
        parse_head(
            bytearray(b"HTTP/1.1 200 OK\r\n" + te + b"Content-Length: " + value + b"\r\n\r\n"),
            head_request=False,
        )


@pytest.mark.parametrize(
    ("te", "codings", "framing"),
    [
        (b"chunked", (), BODY_CHUNKED),
        (b"gzip, chunked", (b"gzip",), BODY_CHUNKED),
        (b"GZIP ,, chunked", (b"gzip",), BODY_CHUNKED),  # empty list elements are allowed
        (b"deflate, gzip, chunked", (b"deflate", b"gzip"), BODY_CHUNKED),
        (b"x-gzip", (b"x-gzip",), BODY_UNTIL_CLOSE),
    ],
)
def test_transfer_codings_before_chunked_are_given_to_undo(
    te: bytes, codings: tuple[bytes, ...], framing: int
) -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n")
    assert (h.transfer_codings, h.framing) == (codings, framing)


def test_transfer_codings_over_several_headers_are_one_list() -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert (h.transfer_codings, h.framing) == ((b"gzip",), BODY_CHUNKED)


@pytest.mark.parametrize(
    ("te", "message"),
    [
        (b"compress, chunked", "unsupported transfer coding b'compress'"),
        (b"br, chunked", "unsupported transfer coding b'br'"),
        (b"identity", "unsupported transfer coding b'identity'"),
        (b"chunked, gzip", "chunked is not the last"),
        (b"chunked, chunked", "chunked is not the last"),
        (b"", "an empty Transfer-Encoding"),
        (b" , ", "an empty Transfer-Encoding"),
    ],
)
def test_transfer_codings_that_cannot_be_undone_are_refused(te: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parse_head(
            bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n"),
            head_request=False,
        )


def test_a_response_without_a_body_ignores_its_transfer_codings() -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n", head_request=True)
    assert (h.framing, h.transfer_codings, h.keep_alive) == (BODY_NONE, (), True)
    h, _ = head(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: x\r\n\r\n")
    assert (h.framing, h.transfer_codings) == (BODY_NONE, ())


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: \x00\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\nX-A: a\rContent-Length: 0\n\n",
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\rthree\r\n\r\n",  # in a folded line
        b"HTTP/1.1 200 OK\r\nX-A: a\r\r\n\r\n",  # on the last line (found by h11's oracle)
        b"HTTP/1.1 200 OK\r\r\n\r\n",
    ],
)
def test_nul_or_a_bare_cr_in_the_head_is_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"NUL|bare CR"):
        parse_head(bytearray(raw), head_request=False)


def test_other_control_characters_in_values_are_kept_as_h11_keeps_them() -> None:
    h, _ = head(b"HTTP/1.1 200 OK\r\nX-A: a\x01b\x7fc\td\r\nContent-Length: 0\r\n\r\n")
    assert h.headers[0] == (b"x-a", b"a\x01b\x7fc\td")


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_a_head_found_by_resumed_searches_is_the_head_found_at_once(cuts: list[int]) -> None:
    # The end of the head split across reads every possible way (\r\n\r\n,
    # \n\n, \n\r\n), a body after it; each call resumes where the last stopped.
    for end in (b"\r\n\r\n", b"\n\n", b"\n\r\n", b"\r\n\n"):
        wire = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4" + end + b"body\r\n\r\n"
        whole = parse_head(bytearray(wire), head_request=False)
        assert whole is not None
        buf, pos, scanned, step = bytearray(), 0, 0, 0
        while True:
            cut = cuts[step % len(cuts)]
            step += 1
            buf += wire[pos : pos + cut]
            pos += cut
            parsed = parse_head(buf, head_request=False, scanned=scanned)
            if parsed is not None:
                break
            scanned = len(buf)
        assert parsed[1] == whole[1]
        assert parsed[0].headers == whole[0].headers


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


def test_trailers_are_bounded_by_the_head_limit() -> None:
    lines = b"".join(b"X-T-%05d: %s\r\n" % (i, b"v" * 50) for i in range(1200))  # ~72 KiB
    assert len(lines) > MAX_HEAD
    decoder = ChunkedDecoder()
    with pytest.raises(ProtocolError, match="trailers larger than 64 KiB"):
        decoder.decode(bytearray(b"2\r\nok\r\n0\r\n" + lines + b"\r\n"))
    # One trailer line without its end, as long as the limit: refused too.
    decoder = ChunkedDecoder()
    with pytest.raises(ProtocolError, match="trailers larger than 64 KiB"):
        decoder.decode(bytearray(b"0\r\nX-T: " + b"v" * MAX_HEAD))
    # Under the limit, dripped a byte at a time: decoded.
    decoder, buf = ChunkedDecoder(), bytearray()
    fits = lines[: 1000 * 63]  # 1,000 whole lines, 63,000 bytes
    assert fits.endswith(b"\r\n")
    for byte in b"2\r\nok\r\n0\r\n" + fits + b"\r\n":
        buf.append(byte)
        decoder.decode(buf)
    assert decoder.done


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
