"""Normalising what spider callbacks produce.

A callback (or ``start()``) may be a sync or async generator, a coroutine, or a
plain function; it may yield, or return one object, an iterable, or None.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

import msgspec

from .._request import Request

__all__ = ["iterate_result", "results_of"]


async def iterate_result(result: Any) -> AsyncIterator[Any]:
    """Yield each request or item in a callback's ``result``, in order."""
    if result is None:
        return
    if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
        async for out in result:
            yield out
        return
    if inspect.isawaitable(result):
        result = await result
        if result is None:
            return
    if (
        isinstance(result, Request | Mapping | msgspec.Struct)
        or not isinstance(result, Iterable)  # a dataclass, an attrs instance
        or hasattr(result, "model_dump")  # a pydantic model iterates its fields
    ):
        # A single request or item, not something to iterate over.
        yield result
        return
    for out in result:
        yield out


def results_of(result: Any) -> AsyncIterable[Any]:
    """What :func:`iterate_result` yields, iterated directly when ``result``
    is already asynchronously iterable (an ``async def`` callback that
    yields, the usual case): one generator frame less for every request and
    item a page yields."""
    if hasattr(result, "__aiter__"):
        return result  # type: ignore[no-any-return]
    return iterate_result(result)
