"""crawlmesh's response-head parser against h11 as an outside oracle.

The same bytes go to both. crawlmesh may refuse what h11 accepts (it is
stricter about a few things), but it must never accept a head h11 rejects as
a protocol error, except for these deliberate choices:

* transfer codings other than chunked (gzip, x-gzip, deflate): h11 supports
  only chunked; crawlmesh undoes them under the size limit (RFC 9112 6.1
  allows either);
* a response without a body (HEAD, 1xx, 204, 304) is not checked for its
  framing headers (Content-Length, Transfer-Encoding), which describe a body
  that is not there.

When both accept, they must agree on the status and the headers (up to the
spaces around a folded line's break).
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawlmesh._transport._http11 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    Head,
    ProtocolError,
    parse_head,
)


def h11_head(raw: bytes, method: str) -> h11.Response | str:
    """h11's reading of ``raw`` as the response to ``method``: the Response,
    or the protocol error's message."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                return "informational"
            assert event is not h11.NEED_DATA, "the head is complete"
    except h11.RemoteProtocolError as exc:
        return str(exc)


def crawlmesh_head(raw: bytes, method: str) -> Head | str:
    try:
        parsed = parse_head(bytearray(raw), head_request=method == "HEAD")
    except ProtocolError as exc:
        return str(exc)
    assert parsed is not None, "the head is complete"
    return parsed[0]


_STATUS = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 200 O\x00K",
        b"HTTP/1.1 200 O\rK",
        b"HTTP/1.1 200 \x80\xff",
    ]
)
_NAME = st.sampled_from(
    [
        b"Content-Length",
        b"Transfer-Encoding",
        b"Connection",
        b"X-A",
        b"Set-Cookie",
        b"X A",
        b"X\x00A",
        b"",
        b"X-A ",
    ]
)
# Pieces of values: framing words, separators, and every kind of byte a
# value could be split or smuggled on.
_PIECE = st.sampled_from(
    [
        b"chunked",
        b"gzip",
        b"deflate",
        b"compress",
        b"identity",
        b"close",
        b"0",
        b"12",
        b"-1",
        b"a",
        b",",
        b" ",
        b"\t",
        b"\x00",
        b"\r",
        b"\x01",
        b"\x7f",
        b"\x80",
        b"\xff",
        b"=",
        b'"',
    ]
)
_VALUE = st.lists(_PIECE, max_size=6).map(b"".join)
_LINE = st.one_of(
    st.tuples(_NAME, _VALUE).map(lambda nv: nv[0] + b":" + nv[1]),
    _VALUE.map(lambda v: b" " + v),  # a folded continuation line
)
_EOL = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    eol = draw(_EOL)
    lines = [draw(_STATUS), *draw(st.lists(_LINE, max_size=6))]
    return eol.join(lines) + eol + eol


def _deliberate(raw: bytes, method: str, h11_error: str) -> bool:
    """Whether a head h11 refuses is one crawlmesh accepts on purpose."""
    if "Transfer-Encoding" in h11_error:
        return True  # codings other than chunked: undone (see the docstring)
    status = int(raw[9:12])
    bodiless = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    return bodiless and ("Content-Length" in h11_error or "Transfer-Encoding" in h11_error)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(heads(), st.sampled_from(["GET", "HEAD"]))
@example(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nX-A: a\r\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "GET")
def test_crawlmesh_accepts_no_head_that_h11_refuses(raw: bytes, method: str) -> None:
    ours = crawlmesh_head(raw, method)
    theirs = h11_head(raw, method)
    if isinstance(ours, str):
        return  # refused: at least as strict as h11
    if isinstance(theirs, str):
        assert _deliberate(raw, method, theirs), (raw, theirs)
        return
    assert ours.status == theirs.status_code
    assert _plain(ours.headers) == _plain(list(theirs.headers))
    # The framing headers h11 normalises (repeated Content-Lengths made one):
    # the same framing.
    if ours.framing == BODY_LENGTH:
        assert [int(v) for k, v in theirs.headers if k == b"content-length"] == [ours.length]
    elif ours.framing == BODY_CHUNKED:
        assert (b"transfer-encoding", b"chunked") in list(theirs.headers)


_FRAMING = (b"content-length", b"transfer-encoding")


def _plain(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # h11 keeps the spaces before a folded line's break ("a " + " b" is
    # "a  b"); crawlmesh joins the parts with one space.
    return [(k, re.sub(rb"[ \t]+", b" ", v)) for k, v in headers if k not in _FRAMING]


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "HEAD"),
        (b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: compress\r\n\r\n", "GET"),
    ],
)
def test_the_deliberate_differences_are_real(raw: bytes, method: str) -> None:
    # Each documented leniency is one: h11 refuses the head, crawlmesh reads it.
    theirs = h11_head(raw, method)
    assert isinstance(theirs, str)
    assert _deliberate(raw, method, theirs)
    assert not isinstance(crawlmesh_head(raw, method), str)
