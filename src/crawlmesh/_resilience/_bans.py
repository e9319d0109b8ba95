"""Ban detection: is this response a block page rather than the content?

A ban is reported to the (node, domain) breaker as a failure, so a proxy
banned by one site is taken off that site only; one ban does not trip it,
a storm does (the breaker's failure rate and run of failures).

Signals, cheapest first:

1. **Headers**, e.g. Cloudflare's ``cf-mitigated: challenge``.
2. **Body patterns**, searched only where block pages are found: bodies of
   the suspect statuses (403, 429, 503: challenge and captcha pages come
   with these), and 2xx bodies of at most ``small_body_bytes`` (a captcha
   interstitial served as 200 is small; real pages mostly are not). Only
   the first ``scan_bytes`` are searched: block pages say so in their
   title and first lines. Regex search costs about 0.5 µs per KB and
   pattern, so searching every page in full would cost more than parsing
   some of them; a 20 KB 200 page is not searched at all.
3. **Statuses** that are a ban signal by themselves (403). 429 is not one
   by default: it asks for a slower rate, which the throttle gives, not
   for another egress; a 429 carrying a captcha page is caught by (2).

The default patterns are specific on purpose. A bare ``captcha`` would
flag every small page that embeds a reCAPTCHA or hCaptcha widget (login
and comment forms), and a site whose pages all do would trip its breakers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, NamedTuple

import msgspec

__all__ = ["DEFAULT_BODY_PATTERNS", "Ban", "BanRules"]

DEFAULT_BODY_PATTERNS: tuple[str, ...] = (
    # The title of a block page: Cloudflare ("Attention Required!", "Just a
    # moment..."), Akamai ("Access Denied"), Amazon ("Robot Check").
    r"<title[^>]*>[^<]{0,100}(?:captcha|attention required|access denied|just a moment"
    r"|are you a robot|robot check|you have been blocked)",
    r"unusual traffic from your",  # Google's /sorry/ page
    r"_cf_chl_opt",  # Cloudflare's challenge script
    r"captcha-delivery\.com",  # DataDome's captcha
    r"px-captcha",  # PerimeterX's captcha
    r"access to this page has been denied",  # PerimeterX's block page
)
"""Lower-case regexes that mark a block page (see :class:`BanRules`)."""

_SHOWN = 60  # characters of the matched text quoted in a reason


@dataclass(frozen=True, slots=True)
class _Compiled:
    body: tuple[re.Pattern[bytes], ...]
    headers: tuple[tuple[str, re.Pattern[str]], ...]


def _flags(pattern: str) -> int:
    # The text searched is lower-cased first, so a lower-case pattern needs
    # no IGNORECASE, which would cost Python's regex engine its fast
    # literal-prefix search (measured 7-10x slower). A pattern with capitals
    # (\S, \W, ...) still works, with the flag.
    return 0 if pattern == pattern.lower() else re.IGNORECASE


def _compile_body(pattern: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode(), _flags(pattern))
    except re.error as exc:
        raise ValueError(f"body_patterns: {pattern!r} is not a valid regex: {exc}") from None


def _compile_header(name: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, _flags(pattern))
    except re.error as exc:
        raise ValueError(
            f"header_patterns[{name!r}]: {pattern!r} is not a valid regex: {exc}"
        ) from None


class Ban(NamedTuple):
    """A response judged a ban by :meth:`BanRules.verdict`."""

    reason: str
    """A short reason for stats and the log."""
    page: bool
    """The page says it is a block (a header or the body matched): it is no
    answer for the spider, so the request is retried elsewhere. False when
    the status alone made the verdict (a plain 403): the breaker counts it,
    and the spider still gets the response as an HTTP error."""


class BanRules(msgspec.Struct, frozen=True, dict=True, forbid_unknown_fields=True):
    """What makes a response a ban (defaults in code).

    Patterns are compiled once, on construction (``dict=True`` gives the
    frozen struct a ``__dict__`` for the cached compiled form); matching is
    case-insensitive for ASCII letters (bodies are bytes: write non-ASCII
    text as the site's encoding spells it, UTF-8 as a rule).

    Raises:
        ValueError: a pattern is not a valid regex (a
            ``msgspec.ValidationError`` when decoded).
    """

    statuses: frozenset[int] = frozenset({403})
    """Statuses that are a ban by themselves: one 403 says little, but the
    breaker trips on a storm of them."""
    suspect_statuses: frozenset[int] = frozenset({403, 429, 503})
    """Statuses whose bodies are searched whatever their size."""
    body_patterns: tuple[str, ...] = DEFAULT_BODY_PATTERNS
    """Regexes searched in the lower-cased start of a suspect body; keep
    them lower-case (and starting with a literal) to keep them fast."""
    small_body_bytes: Annotated[int, msgspec.Meta(ge=0)] = 16384
    """2xx bodies up to this size are searched too; larger ones never."""
    scan_bytes: Annotated[int, msgspec.Meta(ge=1)] = 4096
    """How much of a body, from its start, is searched."""
    header_patterns: dict[str, str] = msgspec.field(
        default_factory=lambda: {"cf-mitigated": "challenge"}
    )
    """Header name → regex searched in its lower-cased value."""

    def __post_init__(self) -> None:
        self._compiled  # noqa: B018  # compile now: a bad pattern fails at start-up

    @cached_property
    def _compiled(self) -> _Compiled:
        return _Compiled(
            body=tuple(_compile_body(p) for p in self.body_patterns),
            headers=tuple(
                (name.lower(), _compile_header(name, p)) for name, p in self.header_patterns.items()
            ),
        )

    def is_ban(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> str | None:
        """Why this response is a ban, or None: :meth:`verdict`'s reason."""
        ban = self.verdict(status, body, headers)
        return None if ban is None else ban.reason

    def verdict(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Ban | None:
        """Whether this response is a ban, and on what evidence.

        Args:
            status: the response status.
            body: the (decompressed) body.
            headers: the response headers; a case-insensitive mapping such
                as :class:`~crawlmesh.Headers`, or one with lower-case keys.

        Returns:
            None if it does not look like one, else a :class:`Ban` whose
            reason reads ``"header cf-mitigated"``, ``"status 429, body:
            'unusual traffic from your'"`` (the text found, lower-cased, cut
            at 60 characters) or ``"status 403"``.
        """
        compiled = self._compiled
        if headers is not None:
            for name, header_rx in compiled.headers:
                value = headers.get(name)
                if value is not None and header_rx.search(value.lower()):
                    return Ban(f"header {name}", page=True)
        if compiled.body and (
            status in self.suspect_statuses
            or (200 <= status < 300 and len(body) <= self.small_body_bytes)
        ):
            text = body[: self.scan_bytes].lower()
            for rx in compiled.body:
                if match := rx.search(text):
                    found = match.group().decode("utf-8", "replace")[:_SHOWN]
                    return Ban(f"status {status}, body: {found!r}", page=True)
        if status in self.statuses:
            return Ban(f"status {status}", page=False)
        return None
