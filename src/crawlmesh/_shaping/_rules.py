"""Per-domain limits, configured by glob.

A rules table maps globs to limits, e.g. in TOML::

    "*" = { rate = "10/s", concurrency = 8 }
    "*.example.com" = { rate = "5/s", burst = 10, concurrency = 4 }
    "api.example.com" = { rate = "1/s" }
    "localhost" = {}

Three kinds of glob exist, and the most specific match wins: an exact name,
then the longest ``*.suffix``, then ``*``. ``*.example.com`` covers
``example.com`` itself and every name under it; an exact ``example.com``
rule overrides it for the apex alone. An empty rule lifts every limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import msgspec

from ._gcra import parse_rate
from ._globs import DomainGlobs

__all__ = ["RateRule", "RateRules", "Rule"]

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class RateRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One domain's limits, as written in the settings."""

    rate: str | None = None
    """Requests per period, e.g. "5/s", "300/m", "1/10s"; None: no rate limit."""
    burst: NonNegInt = 0
    """Requests allowed at once beyond the rate (NGINX's burst with nodelay)."""
    concurrency: PositiveInt | None = None
    """Requests in flight to the domain; None: the crawl's default."""
    per_node: bool = False
    """Apply the rate to each egress node separately (targets limit per IP)."""

    def __post_init__(self) -> None:
        if self.rate is not None:
            parse_rate(self.rate)
        elif self.burst:
            raise ValueError("burst needs a rate")


class Rule(msgspec.Struct, frozen=True):
    """The limits that apply to a domain, resolved from a :class:`RateRule`."""

    glob: str
    """The glob that matched, as written in the settings."""
    rate: float | None
    """Requests per second, or None for no rate limit."""
    burst: int
    """Requests allowed at once beyond the rate."""
    concurrency: int | None
    """Requests in flight to the domain, or None for the crawl's default."""
    per_node: bool
    """Whether the rate applies to each egress node separately."""


# Where msgspec puts the field at fault: "... - at `$.burst`".
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`")


def _fail(glob: str, message: str) -> ValueError:
    return ValueError(f"rate rule {glob!r}: {message}")


def _explain(message: str) -> str:
    unknown = _UNKNOWN.fullmatch(message)
    if unknown is not None:
        return f"unknown field {unknown[1]!r} (expected rate, burst, concurrency or per_node)"
    m = _AT.search(message)
    if m is None:
        return message.replace("`", "")
    return f"{m['path']}: {message[: m.start()].replace('`', '')}"


def _resolve(glob: str, spec: RateRule | Mapping[str, Any]) -> Rule:
    if not isinstance(spec, RateRule):
        if not isinstance(spec, Mapping):
            raise _fail(glob, f"expected a table of rate/burst/concurrency/per_node, got {spec!r}")
        try:
            spec = msgspec.convert(spec, RateRule, strict=False)
        except msgspec.ValidationError as exc:
            raise _fail(glob, _explain(str(exc))) from None
    rate = parse_rate(spec.rate) if spec.rate is not None else None
    return Rule(glob, rate, spec.burst, spec.concurrency, spec.per_node)


class RateRules:
    """Finds the limits of each domain from a table of globs.

    Args:
        rules: glob -> :class:`RateRule`, or a mapping of its fields (as read
            from TOML); strings such as ``"10"`` are converted.
        cache_size: domains whose rule is remembered; the cache is emptied
            when full, which costs only the next lookups.

    Raises:
        ValueError: a bad glob, an unknown field or a bad value; the message
            names the glob.
    """

    __slots__ = ("_globs", "_rules")

    def __init__(
        self, rules: Mapping[str, RateRule | Mapping[str, Any]], *, cache_size: int = 65536
    ) -> None:
        resolved = {glob: _resolve(glob, spec) for glob, spec in rules.items()}
        self._rules = tuple(resolved.values())
        self._globs = DomainGlobs(resolved, what="rate rule", cache_size=cache_size)

    def __iter__(self) -> Iterator[Rule]:
        """The rules, in the order given."""
        return iter(self._rules)

    def for_domain(self, domain: str) -> Rule | None:
        """The rule for ``domain`` (a host name or registered domain), or
        None if no glob matches and there is no ``*`` rule."""
        return self._globs.for_domain(domain)
