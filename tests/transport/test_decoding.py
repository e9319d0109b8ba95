"""Bounded Content-Encoding decoding (crawlmesh._transport._decoding.make_decoder)."""

from __future__ import annotations

import gzip
import os
import random
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlmesh import DecodingFailed, ResponseTooLarge
from crawlmesh._transport._decoding import BodyDecoder, make_decoder

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)


# Content-Encoding -> how to encode a body that way.
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # the RFC's deflate: zlib-wrapped
    "br": br,
    "identity": lambda b: b,
    "": lambda b: b,
}

PAYLOAD = b"".join(b"line %d of the page: <p>caf\xc3\xa9</p>\n" % i for i in range(5000))


def decode(coding: str | None, data: bytes, max_size: int = 10 * MiB, chunk: int = 0) -> bytes:
    decoder = make_decoder(coding, max_size)
    if chunk:
        for i in range(0, len(data), chunk):
            decoder.feed(data[i : i + chunk])
    else:
        decoder.feed(data)
    return decoder.finish()


def feed_all(decoder: BodyDecoder, chunks: Iterable[bytes]) -> bytes:
    for chunk in chunks:
        decoder.feed(chunk)
    return decoder.finish()


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes (cycled), the rest last."""
    i = 0
    for n in sizes * (len(data) // max(1, sum(sizes)) + 1):
        if i >= len(data):
            return
        yield data[i : i + n]
        i += n
    if i < len(data):
        yield data[i:]


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("coding", list(ENCODERS))
def test_round_trip(coding: str) -> None:
    assert decode(coding, ENCODERS[coding](PAYLOAD)) == PAYLOAD


def test_raw_deflate_without_zlib_header() -> None:
    # Many servers send "deflate" as a raw stream.
    assert decode("deflate", raw_deflate(PAYLOAD)) == PAYLOAD


def test_no_content_encoding_passes_bytes_through() -> None:
    assert decode(None, b"\x1f\x8b not touched") == b"\x1f\x8b not touched"


@pytest.mark.parametrize("coding", ["GZIP", " gzip ", "Gzip"])
def test_coding_names_are_case_and_space_insensitive(coding: str) -> None:
    assert decode(coding, gzip.compress(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_empty_body(coding: str) -> None:
    assert decode(coding, ENCODERS[coding](b"")) == b""
    # A HEAD or 204 answer: the header, no bytes at all.
    assert make_decoder(coding, MiB).finish() == b""


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "br"])
def test_fed_byte_by_byte(coding: str) -> None:
    data = ENCODERS[coding](PAYLOAD[:3000])
    assert decode(coding, data, chunk=1) == PAYLOAD[:3000]


def test_raw_deflate_fed_byte_by_byte() -> None:
    assert decode("deflate", raw_deflate(PAYLOAD[:3000]), chunk=1) == PAYLOAD[:3000]


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip, br", lambda b: br(gzip.compress(b))),  # applied in the order listed
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
        ("identity, gzip", gzip.compress),
        ("br,gzip", lambda b: gzip.compress(br(b))),
    ],
)
def test_several_codings_are_undone_in_reverse(
    coding: str, encode: Callable[[bytes], bytes]
) -> None:
    data = encode(PAYLOAD)
    assert decode(coding, data) == PAYLOAD
    assert decode(coding, data, chunk=777) == PAYLOAD


def test_several_codings_accept_an_incompressible_body_at_the_limit() -> None:
    body = random.Random(7).randbytes(100 * KiB)
    assert decode("gzip, br", br(gzip.compress(body)), max_size=len(body)) == body


@pytest.mark.parametrize("coding", ["compress", "zstd", "gzip, zstd", "x-unknown"])
def test_unknown_coding_keeps_the_bytes_as_they_came(coding: str) -> None:
    data = gzip.compress(PAYLOAD)
    assert decode(coding, data) == data
    with pytest.raises(ResponseTooLarge):
        decode(coding, data, max_size=len(data) - 1)


def test_concatenated_gzip_members() -> None:
    parts = [b"first member\n", b"", b"second member\n", PAYLOAD]
    data = b"".join(gzip.compress(p) for p in parts)
    assert decode("gzip", data) == b"".join(parts)
    assert decode("gzip", data, chunk=1) == b"".join(parts)
    assert decode("gzip", data, chunk=4099) == b"".join(parts)


def test_many_concatenated_gzip_members() -> None:
    data = gzip.compress(b"") * 5000 + gzip.compress(b"end")
    assert decode("gzip", data) == b"end"
    assert decode("gzip", data, chunk=64 * KiB) == b"end"


# -- hypothesis: any body, any chunking ---------------------------------------------

bodies = st.one_of(
    st.binary(max_size=4000),
    st.builds(lambda s, n: s * n, st.binary(min_size=1, max_size=40), st.integers(1, 300)),
)
chunkings = st.lists(st.integers(min_value=1, max_value=2000), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    body=bodies,
    coding=st.sampled_from(["gzip", "deflate", "br", "identity", "gzip, br"]),
    sizes=chunkings,
)
def test_round_trip_any_chunking(body: bytes, coding: str, sizes: list[int]) -> None:
    encode = ENCODERS.get(coding, lambda b: br(gzip.compress(b)))
    decoder = make_decoder(coding, 10 * MiB)
    for piece in pieces(encode(body), sizes):
        decoder.feed(piece)
    assert decoder.finish() == body


@settings(max_examples=100, deadline=None)
@given(body=bodies, first=st.integers(2, 50), sizes=chunkings)
def test_raw_deflate_round_trip_any_chunking(body: bytes, first: int, sizes: list[int]) -> None:
    # The first chunk holds at least 2 bytes: see test_raw_deflate_fed_byte_by_byte.
    data = raw_deflate(body)
    decoder = make_decoder("deflate", 10 * MiB)
    decoder.feed(data[:first])
    for piece in pieces(data[first:], sizes):
        decoder.feed(piece)
    assert decoder.finish() == body


@settings(max_examples=100, deadline=None)
@given(
    body=bodies,
    coding=st.sampled_from(["gzip", "deflate", "br", "identity"]),
    slack=st.integers(-3, 3),
    sizes=chunkings,
)
def test_size_limit_is_exact(body: bytes, coding: str, slack: int, sizes: list[int]) -> None:
    limit = len(body) + slack
    if limit < 1:
        return
    decoder = make_decoder(coding, limit)
    data = list(pieces(ENCODERS[coding](body), sizes))
    if slack >= 0:
        assert feed_all(decoder, data) == body
    else:
        with pytest.raises(ResponseTooLarge):
            feed_all(decoder, data)


# -- bombs ------------------------------------------------------------------------

ZEROS = bytes(MiB)


def _deflate_of_zeros(total: int) -> bytes:
    """A raw deflate stream of ``total`` zero bytes, built without compressing
    them all: after a full flush the compressor starts afresh, so one
    compressed MiB can be repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = c.compress(ZEROS) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(ZEROS) + c.flush(zlib.Z_FULL_FLUSH) == block
    return block * (total // MiB) + c.flush()


def _crc_and_adler_of_zeros(total: int) -> tuple[int, int]:
    crc, adler = 0, 1
    for _ in range(total // MiB):
        crc, adler = zlib.crc32(ZEROS, crc), zlib.adler32(ZEROS, adler)
    return crc, adler


def zero_bombs(total: int) -> dict[str, bytes]:
    """``total`` zero bytes as gzip, zlib deflate, raw deflate and br."""
    raw = _deflate_of_zeros(total)
    crc, adler = _crc_and_adler_of_zeros(total)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", crc, total % 2**32)
    zl = b"\x78\xda" + raw + struct.pack(">I", adler)
    c = brotli.Compressor(quality=1)
    b = b"".join(c.process(ZEROS) for _ in range(total // MiB)) + c.finish()
    return {"gzip": gz, "deflate-zlib": zl, "deflate-raw": raw, "br": b}


def test_bomb_construction_is_valid() -> None:
    small = zero_bombs(4 * MiB)
    assert gzip.decompress(small["gzip"]) == bytes(4 * MiB)
    assert zlib.decompress(small["deflate-zlib"]) == bytes(4 * MiB)
    assert zlib.decompress(small["deflate-raw"], -zlib.MAX_WBITS) == bytes(4 * MiB)
    assert brotli.decompress(small["br"]) == bytes(4 * MiB)
    # ... and the decoder reads them when the limit allows.
    for name, data in small.items():
        coding = name.partition("-")[0]
        assert decode(coding, data, max_size=4 * MiB, chunk=64 * KiB) == bytes(4 * MiB)


@pytest.fixture(scope="module")
def gib_bombs() -> dict[str, bytes]:
    """1 GiB of zeros, each about 1 MiB compressed (br: far less)."""
    return zero_bombs(GiB)


def _peak_while(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("name", ["gzip", "deflate-zlib", "deflate-raw", "br"])
def test_bomb_is_cut_off_at_the_limit_in_one_feed(gib_bombs: dict[str, bytes], name: str) -> None:
    data = gib_bombs[name]
    assert len(data) < 2 * MiB  # 1 GiB once decoded
    decoder = make_decoder(name.partition("-")[0], MiB)
    raised: list[BaseException] = []

    def feed_all() -> None:
        try:
            decoder.feed(data)
            decoder.finish()
        except ResponseTooLarge as exc:
            raised.append(exc)

    peak = _peak_while(feed_all)
    assert len(raised) == 1
    assert raised[0].kind == "too_large"
    # Nowhere near 1 GiB (nor even 16 MiB) was allocated to find out.
    assert peak < 16 * MiB


@pytest.mark.parametrize("name", ["gzip", "deflate-zlib", "deflate-raw", "br"])
def test_bomb_is_cut_off_early_when_streamed(gib_bombs: dict[str, bytes], name: str) -> None:
    data = gib_bombs[name]
    decoder = make_decoder(name.partition("-")[0], MiB)
    fed: list[bytes] = []

    def stream() -> Iterator[bytes]:
        for i in range(0, len(data), 16 * KiB):
            fed.append(data[i : i + 16 * KiB])
            yield fed[-1]

    with pytest.raises(ResponseTooLarge):
        feed_all(decoder, stream())
    # The first few compressed KiB already decode past the 1 MiB limit.
    assert len(fed) <= 4


def test_bomb_of_many_gzip_members_is_cut_off() -> None:
    member = gzip.compress(ZEROS)
    data = member * 1024  # 1 GiB in 1,024 members
    decoder = make_decoder("gzip", 3 * MiB)
    with pytest.raises(ResponseTooLarge):
        decoder.feed(data)


def test_bomb_inside_another_coding_is_cut_off(gib_bombs: dict[str, bytes]) -> None:
    data = br(gib_bombs["gzip"])  # Content-Encoding: gzip, br
    decoder = make_decoder("gzip, br", MiB)
    raised: list[Exception] = []

    def feed() -> None:
        try:
            decoder.feed(data)
        except ResponseTooLarge as exc:
            raised.append(exc)

    assert _peak_while(feed) < 16 * MiB
    assert len(raised) == 1


# -- corrupt and truncated data ------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", b"\x1f\x8b\x08\x00" + b"not really gzip" * 10),
        ("gzip", b"plain text, not gzip at all"),
        ("x-gzip", gzip.compress(PAYLOAD)[:50] + b"\xff" * 50),
        ("deflate", b"neither zlib nor raw deflate \xff\xff\xff"),
        ("deflate", zlib.compress(PAYLOAD)[:40] + bytes(range(256))),
        ("br", b"\xff\xff\xff\xff not brotli"),
        ("br", br(PAYLOAD) + b"trailing junk"),
        ("gzip, br", br(b"not gzip inside")),
    ],
)
def test_corrupt_data_is_decoding_failed(coding: str, data: bytes) -> None:
    with pytest.raises(DecodingFailed) as info:
        decode(coding, data)
    assert info.value.kind == "decoding_error"
    assert "corrupt" in str(info.value)


def test_corrupt_data_fails_whatever_the_chunking() -> None:
    data = gzip.compress(PAYLOAD)
    broken = data[:30] + bytes(b ^ 0x55 for b in data[30:60]) + data[60:]
    for chunk in (1, 7, 4096, 0):
        with pytest.raises(DecodingFailed):
            decode("gzip", broken, chunk=chunk)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_truncated_stream_is_decoding_failed(coding: str) -> None:
    data = ENCODERS[coding](PAYLOAD + os.urandom(2000))
    with pytest.raises(DecodingFailed):
        decode(coding, data[: len(data) // 2])
