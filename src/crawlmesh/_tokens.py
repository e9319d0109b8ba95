"""Token files: bearer tokens one per line, ``#`` comments and blank lines skipped.

Read by the node service (the tokens it accepts) and by a crawl's ``node``
transport (the token it sends). Errors name the file, never a token.
"""

from __future__ import annotations

from ._exceptions import SettingsError

__all__ = ["read_token_file"]


def read_token_file(path: str, what: str) -> list[str]:
    """The tokens in ``path``, in order.

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
