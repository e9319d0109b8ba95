"""Tables keyed by domain glob: the most specific glob wins.

Three kinds of glob exist: an exact name, ``*.suffix`` (the suffix itself and
every name under it), and ``*``. A lookup tries the exact name, then the
longest matching suffix, then ``*``. Rate rules and per-domain timeouts both
use it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Generic, TypeVar

from ._domains import normalize_host

__all__ = ["DomainGlobs"]

V = TypeVar("V")

_BAD_NAME = re.compile(r"^\.|[\s/:@?#*]|\.\.")


class DomainGlobs(Generic[V]):
    """Finds the value of each domain from a table of globs.

    Args:
        table: glob -> value.
        what: what a value is, for error messages ("rate rule").
        cache_size: domains whose value is remembered; the cache is emptied
            when full, which costs only the next lookups.

    Raises:
        ValueError: a bad glob, or two spellings of the same domains; the
            message names the glob.
    """

    __slots__ = ("_cache", "_cache_size", "_default", "_exact", "_suffix", "_what")

    def __init__(self, table: Mapping[str, V], *, what: str, cache_size: int = 65536) -> None:
        self._what = what
        self._exact: dict[str, tuple[str, V]] = {}
        self._suffix: dict[str, tuple[str, V]] = {}
        self._default: V | None = None
        self._cache: dict[str, V | None] = {}
        self._cache_size = cache_size
        for glob, value in table.items():
            kind, name = self._pattern(glob)
            if kind == "default":
                self._default = value
                continue
            entries = self._exact if kind == "exact" else self._suffix
            if name in entries:
                # Spellings that differ only in case or a trailing dot.
                raise ValueError(f"{what} {glob!r}: the same domains as {entries[name][0]!r}")
            entries[name] = (glob, value)

    def _pattern(self, glob: str) -> tuple[str, str]:
        """Split a glob into its kind ("exact", "suffix" or "default") and name."""
        if glob.strip() == "*":
            return "default", ""
        kind, name = (
            ("suffix", glob.strip()[2:]) if glob.strip().startswith("*.") else ("exact", glob)
        )
        name = normalize_host(name)
        if kind == "exact" and ":" in name:
            # IPv6 literals are the one kind of name that holds colons.
            try:
                return kind, str(ipaddress.IPv6Address(name))
            except ValueError:
                pass
        elif name and not _BAD_NAME.search(name):
            return kind, name
        raise ValueError(f"{self._what} {glob!r}: expected a host name, '*.' and a domain, or '*'")

    def for_domain(self, domain: str) -> V | None:
        """The value for ``domain`` (a host name or registered domain), or
        None if no glob matches and there is no ``*`` entry."""
        try:
            return self._cache[domain]
        except KeyError:
            pass
        value = self._lookup(domain)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[domain] = value
        return value

    def _lookup(self, domain: str) -> V | None:
        name = normalize_host(domain)
        entry = self._exact.get(name)
        if entry is not None:
            return entry[1]
        if self._suffix:
            # Longest suffix first: strip one label at a time.
            while True:
                entry = self._suffix.get(name)
                if entry is not None:
                    return entry[1]
                dot = name.find(".")
                if dot < 0:
                    break
                name = name[dot + 1 :]
        return self._default
