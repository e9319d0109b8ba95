"""Requests as bytes, for the stores that outlive a process (the job
directory, Redis): callbacks by the name of a spider method, everything else
by value (msgpack; pickle for ``meta`` values msgpack cannot carry)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import msgspec

from .._exceptions import CrawlmeshError, SettingsError
from .._request import Request
from .._spider import Spider

__all__ = ["NotPersistable", "RequestCodec"]


class NotPersistable(CrawlmeshError):
    """A request that cannot be stored (its callback is not a method of the
    spider, or its meta cannot be serialized)."""


class _Record(msgspec.Struct, array_like=True):
    url: str
    callback: str | None
    errback: str | None
    method: str
    headers: dict[str, str] | None
    body: bytes
    priority: int
    meta: dict[str, Any]
    cb_kwargs: dict[str, Any]
    dont_filter: bool
    depth: int
    region: str | None
    session: str | None
    referer: str | None = None  # (absent from records stored before it existed)
    rule: int | None = None  # (likewise)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Record)


class RequestCodec:
    """Encode and decode the requests of one spider.

    Args:
        spider: whose methods stored callbacks name.
        where: names the store in errors (``"--jobdir DIR"``).
    """

    def __init__(self, spider: Spider, where: str) -> None:
        self._spider = spider
        self._where = where

    def encode(self, request: Request) -> bytes:
        """Raises:
        NotPersistable: see the class."""
        record = _Record(
            request.url,
            self._name(request.callback, "callback"),
            self._name(request.errback, "errback"),
            request.method,
            request.headers,
            request.body,
            request.priority,
            request.meta,
            request.cb_kwargs,
            request.dont_filter,
            request.depth,
            request.region,
            request.session,
            request.referer,
            request.rule,
        )
        try:
            return b"m" + _encoder.encode(record)
        except (TypeError, msgspec.EncodeError):
            pass  # meta holding other types: pickle keeps them
        try:
            return b"p" + pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise NotPersistable(f"meta or cb_kwargs cannot be stored: {exc}") from None

    def decode(self, blob: bytes) -> Request:
        """Raises:
        SettingsError: a stored callback names a method the spider no
            longer has."""
        if blob[:1] == b"p":
            record: _Record = pickle.loads(blob[1:])  # our own store
        else:
            record = _decoder.decode(blob[1:])
        return Request(
            record.url,
            callback=self._method(record.callback),
            errback=self._method(record.errback),
            method=record.method,
            headers=record.headers,
            body=record.body,
            priority=record.priority,
            meta=record.meta,
            cb_kwargs=record.cb_kwargs,
            dont_filter=record.dont_filter,
            depth=record.depth,
            region=record.region,
            session=record.session,
            referer=record.referer,
            rule=record.rule,
        )

    def _name(self, fn: Callable[..., Any] | None, what: str) -> str | None:
        if fn is None:
            return None
        name = getattr(fn, "__name__", "")
        if (
            getattr(fn, "__self__", None) is self._spider
            and getattr(self._spider, name, None) == fn
        ):
            return str(name)
        raise NotPersistable(
            f"the {what} {fn!r} is not a method of the spider: {self._where} stores "
            "callbacks by name"
        )

    def _method(self, name: str | None) -> Callable[..., Any] | None:
        if name is None:
            return None
        method = getattr(self._spider, name, None)
        if not callable(method):
            raise SettingsError(
                f"{self._where}: a stored request names the callback {name!r}, "
                f"which {type(self._spider).__name__} does not have"
            )
        return method  # type: ignore[no-any-return]
