"""Files the user hands crawlmesh: TOML (settings, node meshes, node
configs) and token files. Errors are :class:`SettingsError` naming the file
(never a token's text).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from .._exceptions import SettingsError

__all__ = ["read_token_file", "read_toml_file"]


def read_toml_file(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The TOML document in ``path``.

    Args:
        path: the file.
        what: how messages name it, e.g. ``"settings file"``.

    Raises:
        SettingsError: unreadable, or not valid TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SettingsError(
            f"cannot read {what} {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{what} {os.fspath(path)!r} is not valid TOML: {exc}") from None


def read_token_file(path: str, what: str) -> list[str]:
    """The tokens in ``path`` (one per line; ``#`` comments and blank lines
    skipped), in order.

    Args:
        path: the file.
        what: how the error message names the setting, e.g. ``"--token-file"``.

    Raises:
        SettingsError: the file is unreadable, not UTF-8, or holds no token.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f.read().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"{what} {path}: cannot read it: {detail}") from None
    tokens = [line for line in lines if line and not line.startswith("#")]
    if not tokens:
        raise SettingsError(f"{what} {path}: no token in the file")
    return tokens
