"""Registered domains (eTLD+1), from the Public Suffix List shipped offline.

Limits are keyed on the registered domain so that ``a.example.co.uk`` and
``b.example.co.uk`` share one budget (they are usually one site, one set of
servers), while ``alice.github.io`` and ``bob.github.io`` do not: the list's
private section (github.io, blogspot.com, s3.amazonaws.com, ...) marks names
under which unrelated parties hold their own sites.

The list comes from the ``publicsuffixlist`` package, which bundles a dated
snapshot and needs no network; it is parsed on first use (about 45 ms).
"""

from __future__ import annotations

import functools
import ipaddress

import idna
from publicsuffixlist import PublicSuffixList

__all__ = ["normalize_host", "registered_domain"]

# Hosts a crawl meets repeatedly; 64k entries is a few MB at most.
_CACHE_SIZE = 65536


def normalize_host(host: str) -> str:
    """The canonical form of a host name: lower case, no trailing dot,
    international names in their ASCII (punycode) form, IPv6 addresses
    compressed and without brackets.

    One site then has one key however its URLs spell it. A name that is not
    valid IDNA (``a_b.example``, seen in the wild) is kept as written.
    """
    name = host.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        try:
            return str(ipaddress.IPv6Address(name))  # one spelling: "::1", not "0:0::1"
        except ValueError:
            return name
    if not name.isascii():
        try:
            return idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError:
            return name
    return name


@functools.cache
def _suffix_list() -> PublicSuffixList:
    return PublicSuffixList()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _registered(host: str) -> str:
    name = normalize_host(host)
    # IPv6 literals hold colons; a numeric last label makes an IPv4 address
    # (WHATWG URL rules): neither has a suffix to strip.
    if not name or ":" in name or name.rpartition(".")[2].isdigit():
        return name
    # None for a public suffix itself (co.uk, github.io), a single label
    # (localhost) or an empty label (a..b): the host is its own key then.
    return _suffix_list().privatesuffix(name) or name


def registered_domain(host: str) -> str:
    """The registered domain (eTLD+1) a host belongs to.

    ``a.b.example.co.uk`` gives ``example.co.uk``; ``alice.github.io`` stays
    ``alice.github.io`` (a private suffix); IP addresses, single labels such as
    ``localhost`` and public suffixes themselves come back unchanged (but
    normalised, see :func:`normalize_host`). An unknown TLD counts as a
    public suffix, so ``a.b.internal`` gives ``b.internal``.

    Args:
        host: a host name or IP address, as in a URL.

    Returns:
        The registered domain, normalised; results are cached.
    """
    return _registered(host)
