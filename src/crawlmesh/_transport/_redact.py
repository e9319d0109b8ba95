"""Keeping credentials out of logs, messages and reprs.

Proxy URLs carry ``user:password@`` and API templates carry keys read from
the environment. Transports never put either into a message on purpose; these
helpers are the second line, applied to whatever text leaves a transport.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "redact_exception", "redact_text", "redact_url", "secret_forms"]

MASK = "***"

# Shorter secrets are not searched for in free text: masking every "ab" in a
# message would garble it while protecting nothing worth the name.
_MIN_SECRET_LENGTH = 4


def redact_url(url: str) -> str:
    """Replace the userinfo of ``url`` (``user:password@``) with ``***``.

    ``http://user:pass@proxy:3128/`` becomes ``http://***:***@proxy:3128/``;
    a username alone becomes ``***``. Works on malformed URLs too, by plain
    string handling (a URL that fails to parse is exactly the one that ends
    up in an error message).

    Args:
        url: any string; text without a userinfo comes back unchanged.

    Returns:
        The URL with its userinfo masked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # The authority ends at the first "/", "?" or "#"; the userinfo at its
    # last "@" (a password may itself hold an unescaped "@").
    end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url
    masked = f"{MASK}:{MASK}" if ":" in userinfo else MASK
    return f"{scheme}{sep}{masked}@{hostport}{tail}"


def secret_forms(secret: str) -> list[str]:
    """``secret`` as it may appear in text: raw and percent-encoded.

    A key inserted into a query string shows up encoded in any URL that is
    printed, so both spellings have to be masked.
    """
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    return sorted(forms, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Mask every occurrence of each secret in ``text`` with ``***``.

    Secrets shorter than 4 characters are left alone (see the module notes);
    longer ones are replaced longest first, so a secret that contains another
    is masked whole.

    Args:
        text: the text to clean (a message, a log line).
        secrets: strings that must not appear; pass each spelling
            (:func:`secret_forms` gives the usual ones).

    Returns:
        ``text`` with the secrets masked.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_exception(exc: BaseException, secrets: Iterable[str]) -> None:
    """Mask secrets in ``exc`` and in the exceptions chained to it.

    Rewrites ``args`` in place along the ``__cause__``/``__context__`` chain,
    since a logged traceback prints every link of it, not just the last. A
    link whose text lives elsewhere (an exception group's message and
    members, an ``OSError``'s ``strerror``) and still shows a secret is cut
    off, with everything below it: a shorter traceback is the lesser harm.

    Args:
        exc: the exception about to leave a transport (its own message must
            come from ``args``, as every crawlmesh error's does).
        secrets: as for :func:`redact_text`.
    """
    secrets = [s for s in set(secrets) if len(s) >= _MIN_SECRET_LENGTH]
    if not secrets:
        return
    previous: BaseException | None = None
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(
            redact_text(a, secrets) if isinstance(a, str) else a for a in current.args
        )
        if previous is not None and _shows(current, secrets):
            previous.__cause__ = None
            previous.__context__ = None
            previous.__suppress_context__ = True
            return
        previous = current
        current = current.__cause__ or current.__context__


def _shows(exc: BaseException, secrets: list[str]) -> bool:
    # How a traceback prints this link: its message, and a group's members.
    text = "".join(traceback.format_exception_only(exc)) + repr(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(traceback.format_exception(exc, chain=True))
    return any(secret in text for secret in secrets)
