"""Building hook objects from settings: ``"package.module:Name"`` (or
``"package.module.Name"``) names a class, made with no arguments, or an
object to use as it is."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from .._exceptions import SettingsError

__all__ = ["load_objects"]


def load_objects(paths: Sequence[str], setting: str) -> list[object]:
    """The objects ``paths`` name, in order.

    Raises:
        SettingsError: naming the setting and the path that cannot be loaded.
    """
    return [_load(path, f"{setting}[{i}]") for i, path in enumerate(paths)]


def _load(path: str, where: str) -> object:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise SettingsError(f"{where}: {path!r} is not 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{where}: cannot import {module_name!r}: {exc}") from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise SettingsError(f"{where}: module {module_name!r} has no {attr!r}") from None
    if isinstance(target, type):
        try:
            return target()
        except Exception as exc:
            raise SettingsError(
                f"{where}: {path} could not be made: {type(exc).__name__}: {exc}"
            ) from None
    return target
