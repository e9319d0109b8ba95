"""Keeping credentials out of logs, messages, reprs and output files.

Proxy URLs carry ``user:password@``, API templates carry keys read from the
environment, node specs carry bearer tokens and backend URLs carry Redis
passwords. Transports never put any of them into a message on purpose; these
helpers are the second line, applied to whatever text leaves a transport, and
the last one, applied to every log line (see :mod:`crawlmesh._util._log`), the
errors file and the stats.

Three rules, in :func:`redact`:

* **Registered secrets**: whoever reads a secret (the node file loader, the
  transports, the Redis client, the node service) registers it with
  :func:`register_secret`, and it is masked wherever it appears, raw or
  percent-encoded, even inside an exception's message.
* **Userinfo**: ``scheme://user:pass@host`` becomes ``scheme://***:***@host``
  in any text.
* **Secret query parameters**: the value of ``api_key``, ``key``,
  ``token``, ``access_token``, ``password``, ``secret``, ``signature`` (and
  names ending in ``_key``, ``-token``, ...) after a ``?``, ``&`` or ``;``.

Low layer: imports nothing from crawlmesh.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

__all__ = [
    "MASK",
    "redact",
    "redact_exception",
    "redact_text",
    "redact_url",
    "redact_value",
    "register_secret",
    "register_url_secrets",
    "secret_forms",
]

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


# -- the process's registered secrets, and masking them everywhere ----------------

# NAME=VALUE in a query string (after "?", "&" or ";") whose name says it is
# a secret: one of these words, alone or after a prefix ending in "_", "-" or
# "." (so "api_key", "x-api-key", "X-Amz-Signature", but not "monkey"). Not
# in free text, where "KEY=VALUE" is more often an instruction than a key.
_SECRET_PARAM = re.compile(
    r"((?<=[?&;])(?:[\w.-]*[_.-])?"
    r"(?:api_?key|key|token|secret|password|passwd|pwd|pass|signature|sig|auth|credentials?)"
    r"=)[^&#\s'\"<>,;)]+",
    re.IGNORECASE,
)
# scheme://userinfo@ (the userinfo ends at the authority's last "@"; it holds
# no brackets, which an IPv6 host or a "[user:pass@]" placeholder does).
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#'\"<>\[\]]*)@")

_registered: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` (raw and percent-encoded) wherever :func:`redact` looks.

    Values shorter than 4 characters are ignored, as by :func:`redact_text`.
    Registration is for the life of the process: secrets are few and read
    at start-up.
    """
    global _pattern
    forms = {f for f in secret_forms(value) if len(f) >= _MIN_SECRET_LENGTH}
    if forms <= _registered:
        return
    _registered.update(forms)
    # Longest first, so a secret that contains another is masked whole.
    ordered = sorted(_registered, key=len, reverse=True)
    _pattern = re.compile("|".join(map(re.escape, ordered)))


def register_url_secrets(url: str) -> None:
    """Register the credentials of ``url``: its userinfo's user and
    password, and the values of its secret query parameters (those without
    a ``{placeholder}``, which are registered when expanded)."""
    authority = url.partition("://")[2]
    end = min([i for i in (authority.find(c) for c in "/?#") if i != -1] or [len(authority)])
    userinfo, at, _ = authority[:end].rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        for part in (user, password):
            if part:
                register_secret(part)
                register_secret(unquote(part))
    for match in _SECRET_PARAM.finditer(url):
        value = url[match.end(1) : match.end()]
        if "{" not in value:
            register_secret(value)
            register_secret(unquote(value))


def _mask_userinfo(match: re.Match[str]) -> str:
    return match.group(1) + (f"{MASK}:{MASK}@" if ":" in match.group(2) else f"{MASK}@")


def redact(text: str, *, params: bool = True) -> str:
    """``text`` with every registered secret, every URL's userinfo and (if
    ``params``) every secret query parameter's value replaced by ``***``.

    Cheap when there is nothing to mask: each rule looks for its marker
    (a registered secret, ``://``, ``=``) before doing more.
    """
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    if params and "=" in text:
        text = _SECRET_PARAM.sub(rf"\1{MASK}", text)
    return text


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to ``value``: to a string, to the strings inside
    lists, tuples and dicts, and to the ``repr`` of any other object (which
    is returned as a string only when the repr showed something to mask)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    shown = repr(value)
    masked = redact(shown)
    return value if masked == shown else masked
