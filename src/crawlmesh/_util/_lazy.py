"""Names a package face exports but loads on first use (a heavy stack
that most runs never touch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, module: str, names: Iterable[str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: each of
    ``names`` comes from ``package.module`` when first asked for."""
    lazy = frozenset(names)

    def getattr_(name: str) -> Any:
        if name in lazy:
            return getattr(importlib.import_module(module, package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted([*namespace, *lazy])

    return getattr_, dir_
