"""Bounded decoding of Content-Encoding (gzip, deflate, br).

Each decoder is told how many more bytes it may produce, so a compression
bomb is cut off after at most ``limit + 1`` bytes of output, however small
the compressed input.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

from ._exceptions import DecodingFailed, ResponseTooLarge

__all__ = ["BodyDecoder", "make_decoder"]


class _Step(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes: ...
    def flush(self, limit: int) -> bytes: ...


class _Identity:
    def feed(self, data: bytes, limit: int) -> bytes:
        return data

    def flush(self, limit: int) -> bytes:
        return b""


class _Zlib:
    def __init__(self, wbits: int, *, deflate: bool = False) -> None:
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)
        self._deflate = deflate
        self._first = True

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._first and self._deflate:
            self._first = False
            try:
                return self._run(data, limit)
            except zlib.error:
                # "deflate" is often sent raw, without the zlib header.
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        self._first = False
        return self._run(data, limit)

    def _run(self, data: bytes, limit: int) -> bytes:
        out = self._obj.decompress(data, limit + 1)
        if len(out) > limit or self._obj.unconsumed_tail:
            # More output is waiting than the limit allows.
            raise ResponseTooLarge("decompressed body exceeds the size limit")
        if self._obj.eof and self._obj.unused_data and self._wbits == 16 + zlib.MAX_WBITS:
            # Concatenated gzip members (RFC 1952 allows them).
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
            out += self._run(rest, limit - len(out))
        return out

    def flush(self, limit: int) -> bytes:
        return self._obj.flush()[: limit + 1]


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> bytes:
        out: bytes = self._obj.process(data, output_buffer_limit=limit + 1)
        if len(out) > limit or not self._obj.can_accept_more_data():
            raise ResponseTooLarge("decompressed body exceeds the size limit")
        return out

    def flush(self, limit: int) -> bytes:
        return b""


def _step_for(coding: str) -> _Step | None:
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Zlib(zlib.MAX_WBITS, deflate=True)
    if coding == "br":
        return _Brotli()
    if coding in ("identity", ""):
        return _Identity()
    return None


class BodyDecoder:
    """Decodes a body chunk by chunk, refusing to grow past ``max_size``.

    Args:
        content_encoding: the Content-Encoding header ("" for none).
        max_size: the most decoded bytes accepted.
    """

    __slots__ = ("_chunks", "_max", "_size", "_steps")

    def __init__(self, content_encoding: str, max_size: int) -> None:
        steps: list[_Step] = []
        # Codings are listed in the order applied; undo them in reverse.
        for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
            step = _step_for(coding)
            if step is None:
                # An unknown coding: keep the bytes as they came.
                steps = []
                break
            if not isinstance(step, _Identity):
                steps.append(step)
        self._steps = steps
        self._max = max_size
        self._size = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Decode one raw chunk.

        Raises:
            ResponseTooLarge: the decoded body grew past ``max_size``.
            DecodingFailed: the compressed data is corrupt.
        """
        try:
            for step in self._steps:
                data = step.feed(data, self._max - self._size)
        except (zlib.error, brotli.error) as exc:
            raise DecodingFailed(f"corrupt compressed body: {exc}") from exc
        self._add(data)

    def finish(self) -> bytes:
        """Flush the decoders and return the whole decoded body."""
        try:
            for i, step in enumerate(self._steps):
                tail = step.flush(self._max - self._size)
                for later in self._steps[i + 1 :]:
                    tail = later.feed(tail, self._max - self._size)
                self._add(tail)
        except (zlib.error, brotli.error) as exc:
            raise DecodingFailed(f"corrupt compressed body: {exc}") from exc
        return b"".join(self._chunks)

    def _add(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self._max:
                raise ResponseTooLarge(f"body exceeds the size limit of {self._max} bytes")
            self._chunks.append(data)


def make_decoder(content_encoding: str | None, max_size: int) -> BodyDecoder:
    """A :class:`BodyDecoder` for a response's Content-Encoding."""
    return BodyDecoder(content_encoding or "", max_size)
