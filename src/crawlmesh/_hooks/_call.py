"""Calling the user's hook methods: sync or async, named for messages."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["Method", "call", "methods"]


class Method(NamedTuple):
    """One hook method of one user object."""

    name: str
    """``Class.method``, for log lines, stats and error messages."""
    fn: Callable[..., Any]
    is_async: bool
    """Defined with ``async def`` (its calls can be awaited, and timed out)."""


def methods(objects: Sequence[object], name: str) -> tuple[Method, ...]:
    """The ``name`` methods of ``objects`` that define one, in order."""
    found = []
    for obj in objects:
        fn = getattr(obj, name, None)
        if fn is not None and callable(fn):
            name_ = f"{type(obj).__name__}.{name}"
            found.append(Method(name_, fn, inspect.iscoroutinefunction(fn)))
    return tuple(found)


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, awaited when it returns an awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
