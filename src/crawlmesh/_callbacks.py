"""Normalising what spider callbacks produce.

A callback (or ``start()``) may be a sync or async generator, a coroutine, or a
plain function; it may yield, or return one object, an iterable, or None.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ._request import Request

__all__ = ["iterate_result"]


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
    if isinstance(result, Request | dict | msgspec.Struct):
        # A single request or item, not something to iterate over.
        yield result
        return
    for out in result:
        yield out
