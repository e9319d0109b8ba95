"""URL helpers: canonical form, fingerprints and the keys stages group by.

These run for every link of every page, so they stay on the standard library's
C-backed primitives and avoid re-parsing where they can.
"""

from __future__ import annotations

import re
from hashlib import blake2b
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import idna

from ._exceptions import InvalidURL

__all__ = [
    "DEFAULT_PORTS",
    "FETCHABLE_SCHEMES",
    "NAVIGATION_ONLY_SCHEMES",
    "LinkJoiner",
    "canonical_from_parts",
    "canonicalize",
    "fingerprint",
    "host_of",
    "split_http_url",
]

FETCHABLE_SCHEMES = frozenset({"http", "https"})
# Schemes found in hrefs that name no fetchable resource: filtered, not errors.
NAVIGATION_ONLY_SCHEMES = frozenset({"mailto", "javascript", "tel", "data", "sms", "ftp", "about"})
DEFAULT_PORTS = {"http": 80, "https": 443}
"""The port an http(s) URL means when it names none."""
# RFC 3986 unreserved + sub-delims + ":@/%": left alone by canonicalisation.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_UNSAFE = re.compile(r"[ \t\r\n\x00]")
_QUERY_SAFE = _PATH_SAFE + "?"


def split_http_url(url: str) -> SplitResult:
    """Split ``url`` and check that crawlmesh can fetch it.

    Raises:
        InvalidURL: the URL is malformed, has no host, or is not http(s).
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # validates the port number
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in FETCHABLE_SCHEMES:
        raise InvalidURL(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"URL without a host: {url!r}")
    if not host.isascii():
        try:
            idna.encode(host)  # the check httpx applies before sending
        except idna.IDNAError as exc:
            raise InvalidURL(f"invalid international host name in {url!r}: {exc}") from None
    if "]" in parts.netloc and parts.netloc.rpartition("]")[2][:1] not in ("", ":"):
        raise InvalidURL(f"malformed host in {url!r}")
    if port == 0:
        raise InvalidURL(f"URL with port 0: {url!r}")
    if _UNSAFE.search(url) is not None:
        # Whitespace and NUL are where header injection starts; never send them.
        raise InvalidURL(f"URL with whitespace or control characters: {url!r}")
    return parts


def canonicalize(url: str) -> str:
    """Return the canonical form of an http(s) URL, used for dedupe.

    Lower-cases scheme and host, drops the default port, the fragment and
    empty userinfo, gives an empty path ``/``, normalises percent-escapes of
    unsafe characters and sorts query parameters (keeping blank ones).

    Raises:
        InvalidURL: as :func:`split_http_url`.
    """
    return canonical_from_parts(split_http_url(url))


def canonical_from_parts(parts: SplitResult) -> str:
    """:func:`canonicalize` for a URL already split by :func:`split_http_url`."""
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username
        if parts.password is not None:
            userinfo += ":" + parts.password
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    if not path.isascii() or " " in path:
        path = quote(path, safe=_PATH_SAFE)
    query = parts.query
    if query:
        if not query.isascii() or " " in query:
            query = quote(query, safe=_QUERY_SAFE)
        if "&" in query:
            query = "&".join(sorted(query.split("&")))
        return f"{scheme}://{netloc}{path}?{query}"
    return f"{scheme}://{netloc}{path}"


def fingerprint(method: str, canonical_url: str, body: bytes = b"") -> bytes:
    """A 16-byte fingerprint of method + canonical URL + body."""
    h = blake2b(method.encode("ascii", "replace"), digest_size=16)
    h.update(b" ")
    h.update(canonical_url.encode("utf-8", "surrogatepass"))
    if body:
        h.update(b"\n")
        h.update(body)
    return h.digest()


def host_of(parts: SplitResult) -> str:
    """The lower-cased host name (without port) that politeness is keyed on."""
    return parts.hostname or ""


class LinkJoiner:
    """``urljoin(base, href)`` for many links of one page, with fast paths.

    Absolute-path links (``/a/b``), absolute http(s) links and plain relative
    paths (``item.html``, ``../s05/item.html``) are joined with string
    operations; anything else (dot segments inside, backslashes, other
    schemes, queries or fragments alone, ``//host``) goes to
    :func:`urllib.parse.urljoin`, whose results these match exactly.
    """

    __slots__ = ("_base", "_origin", "_prefixes", "_relative_ok")

    def __init__(self, base: str) -> None:
        self._base = base
        parts = urlsplit(base)
        self._origin = ""
        # What a relative path is appended to, by the number of "../" it
        # starts with: "http://h/a/b/c.html" gives "http://h/a/b/",
        # "http://h/a/" and "http://h/".
        self._prefixes: list[str] = []
        self._relative_ok = False
        if parts.scheme in FETCHABLE_SCHEMES and parts.netloc:
            origin = self._origin = f"{parts.scheme}://{parts.netloc}"
            path = parts.path
            # A base with dot segments, empty segments or params: urljoin decides.
            self._relative_ok = not ("/." in path or "//" in path or ";" in path)
            if self._relative_ok:
                dirs = path.split("/")[1:-1]
                self._prefixes = [
                    origin + "/" + "".join(d + "/" for d in dirs[: len(dirs) - up])
                    for up in range(len(dirs) + 1)
                ]

    def join(self, href: str) -> str:
        """Resolve ``href`` (already stripped).

        Raises:
            ValueError: as :func:`urllib.parse.urljoin`, for malformed links.
        """
        origin = self._origin
        # urljoin drops an empty query or fragment and splits ";params": leave
        # those rare shapes, and backslashes, to it.
        if (
            origin
            and "\\" not in href
            and ";" not in href
            and href[-1:] not in ("?", "#")
            and "?#" not in href
        ):
            first = href[:1]
            if first == "/":
                if href[1:2] != "/" and "/." not in href:
                    return origin + href
            elif href.startswith(("http://", "https://")):
                if "/." not in href:
                    return href
            elif self._relative_ok and (first not in ("", "?", "#", ".") or href[:3] == "../"):
                resolved = self._relative(href)
                if resolved is not None:
                    return resolved
        return urljoin(self._base, href)

    def _relative(self, href: str) -> str | None:
        ups = 0
        while href.startswith("../", ups * 3):
            ups += 1
        rest = href[ups * 3 :] if ups else href
        if not rest:
            return None
        # The path: what comes before a query or a fragment.
        end = rest.find("?")
        path = rest if end < 0 else rest[:end]
        end = path.find("#")
        if end >= 0:
            path = path[:end]
        if not ups and ":" in path.partition("/")[0]:
            return None  # a scheme, e.g. mailto: or ftp:
        if path[:1] in ("/", ".") or "/." in path or "//" in path:
            return None  # dot segments or empty segments: urljoin's rules apply
        prefixes = self._prefixes
        if ups >= len(prefixes):
            return None
        return prefixes[ups] + rest
