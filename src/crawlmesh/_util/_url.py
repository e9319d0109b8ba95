"""URL helpers: WHATWG resolution, canonical form, fingerprints and the keys
stages group by.

Links resolve as a browser resolves them (the WHATWG URL Standard, with ada,
Node.js's parser, as the reference and the slow path); the few deliberate
differences are listed in README.md ("URL handling"). These run for every
link of every page, so the common shapes take string-operation fast paths
that tests/util/test_url.py checks against ada.
"""

from __future__ import annotations

import codecs
import functools
import re
from hashlib import blake2b
from urllib.parse import SplitResult, quote, urlsplit

import idna
from ada_url import URL, join_url

from .._exceptions import InvalidURL

__all__ = [
    "DEFAULT_PORTS",
    "FETCHABLE_SCHEMES",
    "NAVIGATION_ONLY_SCHEMES",
    "LinkJoiner",
    "base_url_of",
    "canonical_from_parts",
    "canonicalize",
    "encode_query",
    "fingerprint",
    "host_of",
    "normalize",
    "query_encoding",
    "resolve",
    "split_http_url",
    "strip_href",
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
# Links made only of these characters are ones WHATWG copies as they are
# (no percent-encoding, no tab or newline to strip, no backslash); with no
# dot segment ("/.", "%2e") the fast paths may join them by concatenation.
_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/?#%]*")
# Leading and trailing C0 controls and spaces: what WHATWG strips.
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# Escapes of unreserved characters (RFC 3986: ALPHA DIGIT - . _ ~), which
# mean the same URL decoded; and escapes to upper-case.
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# "http://host:port" prefixes already in WHATWG's form (lower-case host,
# no default port, IPv4 in dotted decimal, punycode): bounded, cleared when full.
_CANONICAL_AUTHORITIES: dict[str, bool] = {}
_AUTHORITY_CACHE_SIZE = 4096
# Links seen lately, and whether each is plain (see LinkJoiner.join).
_PLAIN_HREFS: dict[str, bool] = {}
_PLAIN_HREFS_SIZE = 1 << 16


def strip_href(href: str) -> str:
    """``href`` without the leading and trailing C0 controls and spaces
    that WHATWG strips (other white space, such as U+00A0, stays)."""
    return href.strip(_C0_AND_SPACE)


def _is_plain(href: str) -> bool:
    return (
        _PLAIN.fullmatch(href) is not None
        and "/." not in href
        and "%2e" not in href
        and "%2E" not in href
    )


def _remember_plain(href: str) -> bool:
    """Whether ``href`` is made only of characters WHATWG copies as they
    are, with no ``%2e`` (a dot segment in disguise); remembered, as most
    links of a site recur on many of its pages (a bounded table, cleared
    when full)."""
    plain = _PLAIN.fullmatch(href) is not None and "%2e" not in href and "%2E" not in href
    if len(_PLAIN_HREFS) >= _PLAIN_HREFS_SIZE:
        _PLAIN_HREFS.clear()
    _PLAIN_HREFS[href] = plain
    return plain


def _authority_is_canonical(url: str) -> bool:
    """Whether the scheme and authority of ``url`` (http(s), plain) are as
    WHATWG serialises them, so that ``url`` is its own serialisation."""
    slash = url.find("/", 8)
    if slash < 0:
        return False  # ada adds the "/" of an empty path
    prefix = url[:slash]
    ok = _CANONICAL_AUTHORITIES.get(prefix)
    if ok is None:
        try:
            ok = URL(prefix + "/").href == prefix + "/"
        except ValueError:
            ok = False
        if len(_CANONICAL_AUTHORITIES) >= _AUTHORITY_CACHE_SIZE:
            _CANONICAL_AUTHORITIES.clear()
        _CANONICAL_AUTHORITIES[prefix] = ok
    return ok


def resolve(base: str, href: str) -> str:
    """``href`` resolved against ``base`` by the WHATWG rules (ada).

    Raises:
        InvalidURL: the result is not a valid URL.
    """
    try:
        return join_url(base, href)
    except ValueError:
        raise InvalidURL(f"malformed URL {href!r}") from None


def normalize(url: str) -> str:
    """``url`` in WHATWG's serialisation, without its fragment: the URL
    crawlmesh fetches and reports (``response.url``) for a request's URL.

    Raises:
        InvalidURL: ``url`` does not parse.
    """
    if url.startswith(("http://", "https://")) and _is_plain(url) and _authority_is_canonical(url):
        return url.partition("#")[0]
    try:
        return URL(url).href.partition("#")[0]
    except ValueError:
        raise InvalidURL(f"malformed URL {url!r}") from None


@functools.lru_cache(maxsize=64)
def query_encoding(encoding: str) -> str | None:
    """The codec a page's link queries are encoded in, when it is not
    UTF-8 (None: UTF-8, ada's own). UTF-16 and UTF-32 pages use UTF-8, as
    the URL Standard says."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name.startswith(("utf-8", "utf-16", "utf-32", "utf_16", "utf_32")):
        return None
    return name


def encode_query(href: str, encoding: str) -> str:
    """``href`` with the non-ASCII characters of its query percent-encoded
    in ``encoding``; a character the encoding lacks becomes ``&#N;``
    (escaped), as browsers send it. Links to other schemes than http(s)
    are left alone (WHATWG encodes those in UTF-8)."""
    scheme = _SCHEME.match(href.lstrip(_C0_AND_SPACE))
    if scheme is not None and scheme.group().lower() not in ("http:", "https:"):
        return href
    start = href.find("?")
    end = href.find("#")
    if start < 0 or 0 <= end < start:
        return href
    if end < 0:
        end = len(href)
    query = href[start + 1 : end]
    if query.isascii():
        return href
    out: list[str] = []
    for ch in query:
        if ch.isascii():
            out.append(ch)
            continue
        try:
            data = ch.encode(encoding)
        except UnicodeEncodeError:
            out.append(f"%26%23{ord(ch)}%3B")
        else:
            out.append("".join(f"%{b:02X}" for b in data))
    return href[: start + 1] + "".join(out) + href[end:]


def base_url_of(document_url: str, href: str | None, encoding: str = "utf-8") -> str:
    """A page's base URL: its ``<base href>`` resolved against the page's
    URL, or the page's URL when there is none, it does not parse, or it is
    a ``data:`` or ``javascript:`` URL (the HTML Standard's frozen base URL)."""
    if href is None:
        return document_url
    try:
        base = LinkJoiner(document_url, encoding).join(href)
    except ValueError:
        return document_url
    if base.startswith(("data:", "javascript:")):
        return document_url
    return base


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
    unsafe characters, decodes escapes of unreserved characters (``%7E`` is
    ``~``), upper-cases the others (``%c3`` is ``%C3``) and sorts query
    parameters (keeping blank ones).

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
    if "%" in path:
        path = _ESCAPE.sub(_unescape_unreserved, path)
    query = parts.query
    if query:
        if not query.isascii() or " " in query:
            query = quote(query, safe=_QUERY_SAFE)
        if "%" in query:
            query = _ESCAPE.sub(_unescape_unreserved, query)
        if "&" in query:
            query = "&".join(sorted(query.split("&")))
        return f"{scheme}://{netloc}{path}?{query}"
    return f"{scheme}://{netloc}{path}"


def _unescape_unreserved(match: re.Match[str]) -> str:
    """``%7E`` as ``~``, ``%41`` as ``A``; other escapes in upper case."""
    escape = match.group()
    code = int(escape[1:], 16)
    return chr(code) if code in _UNRESERVED else escape.upper()


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
    """WHATWG URL resolution of many links of one page, with fast paths.

    The reference is ada (``ada_url``, the URL parser of Node.js): the
    result is what a browser's ``a.href`` gives, fragment included.
    Absolute-path links (``/a/b``), absolute http(s) links on a host already
    in canonical form, plain relative paths (``item.html``, ``../s05/x``)
    and query- or fragment-only links (``?p=2``, ``#top``) made only of
    characters that WHATWG leaves alone are joined with string operations;
    everything else (spaces, tabs, backslashes, dot segments, ``%2e``,
    non-ASCII, ``//host``, other schemes) goes to ada. tests/util/test_url.py
    checks the two agree.

    Args:
        base: the page's base URL.
        encoding: the page's charset: non-ASCII characters of a link's
            query are percent-encoded in it, as browsers do (the path is
            always UTF-8).
    """

    __slots__ = ("_base", "_doc", "_encoding", "_origin", "_prefixes", "_unfragmented")

    def __init__(self, base: str, encoding: str = "utf-8") -> None:
        self._encoding = query_encoding(encoding)
        self._origin = ""
        # What a relative path is appended to, by the number of "../" it
        # starts with: "http://h/a/b/c.html" gives "http://h/a/b/",
        # "http://h/a/" and "http://h/".
        self._prefixes: list[str] = []
        self._doc = ""  # the base without its query and fragment
        self._unfragmented = ""
        if (
            base.startswith(("http://", "https://"))
            and _is_plain(base)
            and _authority_is_canonical(base)
        ):
            href = base  # its own serialisation: no need to parse it
        else:
            try:
                href = URL(base).href
            except ValueError:
                self._base = base  # every join goes to ada, and fails
                return
        self._base = href
        self._unfragmented = href.partition("#")[0]
        if href.startswith(("http://", "https://")):
            # (A special URL's serialised path starts with "/"; its
            # userinfo, host and path have no "/", "?" or "#" unescaped.)
            start = href.index("/", href.index(":") + 3)
            end = len(href)
            for stop in "?#":
                i = href.find(stop, start, end)
                if i >= 0:
                    end = i
            origin = self._origin = href[:start]
            path = href[start:end]
            dirs = path.split("/")[1:-1]
            self._prefixes = [
                origin + "/" + "".join(d + "/" for d in dirs[: len(dirs) - up])
                for up in range(len(dirs) + 1)
            ]
            self._doc = origin + path

    def join(self, href: str) -> str:
        """Resolve ``href``.

        Raises:
            ValueError: the link does not parse (``http://[::1``).
        """
        href = href.strip(_C0_AND_SPACE)  # (as WHATWG does; no copy if none)
        plain = _PLAIN_HREFS.get(href)
        if plain is None:
            plain = _remember_plain(href)
        if plain and self._origin:
            # (Each shape checks for "/." (dot segments) where it can have them.)
            first = href[:1]
            if first == "/":
                if href[1:2] != "/" and "/." not in href:
                    return self._origin + href
            elif first == "?":
                return self._doc + href
            elif first == "#":
                return self._unfragmented + href
            elif href.startswith(("http://", "https://")):
                if "/." not in href and _authority_is_canonical(href):
                    return href
            elif first != "." or href[:3] == "../":
                resolved = self._relative(href)
                if resolved is not None:
                    return resolved
        if self._encoding is not None and not href.isascii():
            href = encode_query(href, self._encoding)
        return join_url(self._base, href)

    def _relative(self, href: str) -> str | None:
        ups = 0
        while href.startswith("../", ups * 3):
            ups += 1
        rest = href[ups * 3 :] if ups else href
        if not rest or rest[:1] in ("/", ".", "?", "#") or "/." in rest:
            return None
        if not ups and ":" in rest:
            # A colon in the first segment makes it a scheme (mailto:, ftp:).
            end = len(rest)
            for stop in "/?#":
                i = rest.find(stop, 0, end)
                if i >= 0:
                    end = i
            if ":" in rest[:end]:
                return None
        prefixes = self._prefixes
        if ups >= len(prefixes):
            return None  # "../" above the root: WHATWG's rules apply
        return prefixes[ups] + rest
