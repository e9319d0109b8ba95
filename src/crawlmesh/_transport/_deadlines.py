"""Fetch deadlines by node kind and by domain.

The crawl's ``[timeouts]`` give every attempt its connect, read and total
deadlines; ``timeouts.kinds`` overrides them for a kind of node (a scraping
API that renders pages needs longer reads) and ``timeouts.domains`` for a
domain glob (a slow site), the domain's winning over the kind's. Resolved
per (host, node kind) once and cached, so the cost per request is one dict
lookup, and nothing at all when no override is set.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .._shaping._globs import DomainGlobs
from ._base import FetchOptions

__all__ = ["Deadlines", "TimeoutRule"]

_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_CACHE_SIZE = 65536


class TimeoutRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Overrides of some of the fetch deadlines, in seconds (unset: inherited)."""

    connect: _PositiveFloat | None = None
    read: _PositiveFloat | None = None
    total: _PositiveFloat | None = None


class Deadlines:
    """The deadlines of one attempt, by host and node kind.

    Args:
        total: seconds for one whole attempt by default.
        kinds: node kind -> overrides.
        domains: domain glob -> overrides (they win over the kind's).

    Raises:
        ValueError: a bad domain glob, naming it.
    """

    __slots__ = ("_cache", "_domains", "_kinds", "total")

    def __init__(
        self,
        total: float,
        kinds: dict[str, TimeoutRule] | None = None,
        domains: dict[str, TimeoutRule] | None = None,
    ) -> None:
        self.total = total
        self._kinds = kinds or {}
        self._domains = DomainGlobs(domains, what="timeouts.domains") if domains else None
        self._cache: dict[tuple[str, str], tuple[TimeoutRule | None, float]] = {}

    def resolve(self, host: str, kind: str, options: FetchOptions) -> tuple[FetchOptions, float]:
        """``options`` with the connect and read deadlines for ``host``
        through a node of ``kind``, and the attempt's total deadline."""
        if not self._kinds and self._domains is None:
            return options, self.total
        key = (host, kind)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache_miss(key)
        rule, total = hit
        if rule is None:
            return options, total
        return (
            msgspec.structs.replace(
                options,
                connect_timeout=rule.connect or options.connect_timeout,
                read_timeout=rule.read or options.read_timeout,
            ),
            total,
        )

    def _cache_miss(self, key: tuple[str, str]) -> tuple[TimeoutRule | None, float]:
        host, kind = key
        by_kind = self._kinds.get(kind)
        by_domain = self._domains.for_domain(host) if self._domains is not None else None
        merged: TimeoutRule | None = None
        if by_kind is not None or by_domain is not None:
            fields: dict[str, float] = {}
            for rule in (by_kind, by_domain):  # the domain's last: it wins
                if rule is not None:
                    fields.update({k: v for k, v in msgspec.structs.asdict(rule).items() if v})
            merged = TimeoutRule(**fields)
        total = merged.total if merged is not None and merged.total else self.total
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = hit = (merged, total)
        return hit
