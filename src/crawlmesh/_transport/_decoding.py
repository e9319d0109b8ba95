"""Bounded decoding of Content-Encoding (gzip, deflate, br), and of the
transfer codings a body may come in besides chunked (gzip, deflate).

Each decoder is told how many more bytes it may produce, so a compression
bomb is cut off after at most ``limit + 1`` bytes of output, however small
the compressed input.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import brotli

from .._exceptions import DecodingFailed, ResponseTooLarge

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
    """gzip (possibly several members) or deflate (zlib-wrapped or raw)."""

    def __init__(self, wbits: int, *, deflate: bool = False) -> None:
        self._gzip = wbits == 16 + zlib.MAX_WBITS
        self._wbits = wbits
        # deflate: which of the two framings is decided on the first 2 bytes.
        self._obj = None if deflate else zlib.decompressobj(wbits)
        self._pending = b""
        self._fed = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if data:
            self._fed = True
        if self._obj is None:
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return b""
            self._pending = b""
            cmf, flg = data[0], data[1]
            # "deflate" is often sent raw, without the zlib header (RFC 1950 §2.2).
            wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._run(self._obj, data, limit)

    def _run(self, obj: Any, data: bytes, limit: int) -> bytes:
        out: list[bytes] = []
        size = 0
        while True:
            chunk = obj.decompress(data, limit - size + 1)
            size += len(chunk)
            out.append(chunk)
            if size > limit or obj.unconsumed_tail:
                # More output is waiting than the limit allows.
                raise ResponseTooLarge("decompressed body exceeds the size limit")
            rest = obj.unused_data
            if not (self._gzip and obj.eof and rest) or not rest.strip(b"\0"):
                # Done, or only zero padding after the last member (gzip(1) skips it).
                return b"".join(out)
            # Concatenated gzip members (RFC 1952 allows them).
            obj = self._obj = zlib.decompressobj(self._wbits)
            data = rest

    def flush(self, limit: int) -> bytes:
        if not self._fed:
            return b""  # an empty body (HEAD, 204, 304) with a Content-Encoding
        if self._obj is None or not self._obj.eof:
            raise DecodingFailed("compressed body ended early (truncated)")
        return bytes(self._obj.flush()[: limit + 1])


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()
        self._fed = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if data:
            self._fed = True
        out: bytes = self._obj.process(data, output_buffer_limit=limit + 1)
        if len(out) > limit or not self._obj.can_accept_more_data():
            raise ResponseTooLarge("decompressed body exceeds the size limit")
        return out

    def flush(self, limit: int) -> bytes:
        if self._fed and not self._obj.is_finished():
            raise DecodingFailed("compressed body ended early (truncated)")
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
        transfer_codings: the body's transfer codings other than chunked, in
            the order applied: undone first, and each must be known (the
            bytes are never passed on still in a transfer coding).

    Raises:
        DecodingFailed: a transfer coding this decoder does not know.
    """

    __slots__ = ("_chunks", "_inner_limit", "_max", "_size", "_steps")

    def __init__(
        self, content_encoding: str, max_size: int, *, transfer_codings: Sequence[str] = ()
    ) -> None:
        transfer: list[_Step] = []
        for coding in reversed(transfer_codings):
            step = _step_for(coding)
            if step is None or isinstance(step, _Identity):
                raise DecodingFailed(f"unsupported transfer coding {coding[:40]!r}")
            transfer.append(step)
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
        self._steps = transfer + steps
        self._max = max_size
        # An inner coding's output is the next coding's input: compressed data
        # may be a little larger than what it decodes to, so allow some slack.
        self._inner_limit = max_size + max_size // 64 + 1024
        self._size = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Decode one raw chunk.

        Raises:
            ResponseTooLarge: the decoded body grew past ``max_size``.
            DecodingFailed: the compressed data is corrupt.
        """
        try:
            for step in self._steps[:-1]:
                data = step.feed(data, self._inner_limit)
            if self._steps:
                data = self._steps[-1].feed(data, self._max - self._size)
        except (zlib.error, brotli.error) as exc:
            raise DecodingFailed(f"corrupt compressed body: {exc}") from exc
        self._add(data)

    def finish(self) -> bytes:
        """Flush the decoders and return the whole decoded body."""
        try:
            last = len(self._steps) - 1
            for i, step in enumerate(self._steps):
                tail = step.flush(self._inner_limit if i < last else self._max - self._size)
                for j in range(i + 1, last + 1):
                    limit = self._inner_limit if j < last else self._max - self._size
                    tail = self._steps[j].feed(tail, limit)
                self._add(tail)
            for step in self._steps:
                step.flush(0)  # every stream must have ended, or the body was cut short
        except (zlib.error, brotli.error) as exc:
            raise DecodingFailed(f"corrupt compressed body: {exc}") from exc
        return b"".join(self._chunks)

    def _add(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self._max:
                raise ResponseTooLarge(f"body exceeds the size limit of {self._max} bytes")
            self._chunks.append(data)


def make_decoder(
    content_encoding: str | None, max_size: int, *, transfer_codings: Sequence[str] = ()
) -> BodyDecoder:
    """A :class:`BodyDecoder` for a response's Content-Encoding (and its
    transfer codings other than chunked)."""
    return BodyDecoder(content_encoding or "", max_size, transfer_codings=transfer_codings)
