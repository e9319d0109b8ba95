"""Link extraction: which links of a page to follow, as typed records.

:class:`LinkExtractor` is the filter a :class:`~crawlmesh.Rule` applies to
each page (and a spider may call directly). It runs for every link of every
page, so it walks the lxml tree the response has parsed already, without a
parsel ``Selector`` per element, resolves links with the page's
:class:`~crawlmesh._util._url.LinkJoiner` (WHATWG, ``<base href>``
honoured), and collects a link's text only once the link has passed every
filter. ``bench/bench_links.py`` gives the cost per link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from ada_url import URL
from lxml.etree import tostring as _tostring
from parsel.csstranslator import HTMLTranslator

from ._exceptions import InvalidURL
from ._util._content_type import is_markup
from ._util._url import LinkJoiner, canonicalize

if TYPE_CHECKING:
    from ._response import Response

__all__ = ["DENY_EXTENSIONS", "Link", "LinkExtractor", "host_of_href"]

# Files a crawl for pages has no use for, by the extension of the URL's last
# path segment: what Scrapy skips by default, and the like.
_IMAGES = (
    "ai avif bmp cdr dng drw dxf eps gif heic heif ico jfif jpe jpeg jpg mng pct png ps "
    "psd psp raw svg svgz tga tif tiff webp"
)
_AUDIO = "aac aif aiff amr au flac m4a mid midi mka mp3 oga ogg opus ra wav weba wma"
_VIDEO = "3g2 3gp asf asx avi flv m2ts m4v mkv mov mp4 mpeg mpg ogv qt rm rmvb swf ts vob webm wmv"
_OFFICE = "doc docm docx key numbers odb odc odf odg odp ods odt pages pps ppsx ppt pptx rtf xls xlsm xlsx"  # noqa: E501
_ARCHIVES = "7z 7zip apk arj bz2 cab deb dmg gz img iso jar lz lzma msi rar rpm tar tbz tgz txz xz z zip zst"  # noqa: E501
_OTHER = "bin css dll eot exe js otf pdf rss so ttf woff woff2"
DENY_EXTENSIONS: frozenset[str] = frozenset(
    " ".join((_IMAGES, _AUDIO, _VIDEO, _OFFICE, _ARCHIVES, _OTHER)).split()
)
"""The extensions (lower case, no dot) :class:`LinkExtractor` skips unless
told otherwise: images, audio, video, office documents, archives and
packages, fonts, scripts and style sheets, executables, PDF."""

_translator = HTMLTranslator()


class Link(msgspec.Struct, frozen=True, gc=False):
    """A link found on a page.

    Attributes:
        url: the absolute URL, without its fragment (browsers never send
            it); canonical if the extractor canonicalises.
        text: the element's text, white space collapsed (``""`` for an
            ``<area>`` or an image link).
        fragment: what followed ``#`` in the link, if anything.
        nofollow: the element has ``rel="nofollow"``.
    """

    url: str
    text: str = ""
    fragment: str = ""
    nofollow: bool = False


def _strings(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One string, many, or None (Scrapy's arguments accept all three)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _patterns(value: str | re.Pattern[str] | Iterable[str | re.Pattern[str]]) -> list[Any]:
    items = [value] if isinstance(value, str | re.Pattern) else list(value)
    return [re.compile(p) for p in items]


def _domain(name: str) -> str:
    """A domain as WHATWG serialises a host (lower case, punycode)."""
    name = name.strip().strip(".").lower()
    try:
        return URL(f"http://{name}/").hostname or name
    except ValueError:
        return name


def host_of_href(url: str) -> str:
    """The host of a serialised http(s) URL (no userinfo, no port)."""
    start = url.index("//") + 2
    end = url.find("/", start)
    authority = url[start:end] if end >= 0 else url[start:]
    at = authority.rfind("@")
    if at >= 0:
        authority = authority[at + 1 :]
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.partition(":")[0]


def _extension(url: str) -> str:
    """The lower-cased extension of the URL's last path segment, or ``""``."""
    query = url.find("?")
    if query >= 0:
        url = url[:query]
    slash = url.rfind("/")
    dot = url.rfind(".", slash)
    if dot < 0 or slash <= url.find("//") + 1:
        return ""  # (no dot, or no path: "http://host.example")
    return url[dot + 1 :].lower()


def _has_nofollow(rel: str | None) -> bool:
    return rel is not None and "nofollow" in rel.lower().replace(",", " ").split()


def _text_of(element: Any) -> str:
    # (libxml2's text serialisation: a tenth of the cost of itertext(),
    # which builds a Python proxy for every child element; the same text,
    # comments and processing instructions left out.)
    if len(element):
        text = _tostring(element, method="text", encoding=str, with_tail=False)
    else:
        text = element.text or ""
    return " ".join(text.split())


class LinkExtractor:
    """Finds the links of a page to follow.

    A link is the value of one of ``attrs`` on one of ``tags``, resolved
    against the page's base URL (its ``<base href>``, else its URL), kept
    when it is an http(s) URL that passes every filter. Filters apply to the
    absolute URL without its fragment. Links that do not parse, and
    ``mailto:``, ``javascript:``, ``tel:``, ``data:``, ``ftp:`` links, are
    skipped. Links come back in document order, each URL once (``unique``).

    Args:
        allow: regular expressions; if any is given, a URL must match
            (``re.search``) one of them.
        deny: regular expressions a URL must match none of (deny wins).
        allow_domains: if given, the URL's host must be one of these or a
            subdomain of one.
        deny_domains: hosts (and their subdomains) to skip.
        restrict_xpaths: only links inside the elements these XPath
            expressions select (the elements themselves included).
        restrict_css: as ``restrict_xpaths``, with CSS selectors.
        tags: the elements links are taken from.
        attrs: the attributes of those elements holding a link.
        canonicalize: rewrite each URL to crawlmesh's canonical form (query
            parameters sorted, escapes normalised): off by default, as in
            Scrapy, since the frontier's dupe filter compares canonical forms
            anyway and some servers care about parameter order.
        unique: return each URL once per page (the first link to it).
        process_value: called with each attribute value before it is
            resolved; returns the link to use, or None to skip it (to pull a
            URL out of ``javascript:go('page.html')``, say).
        deny_extensions: extensions (without the dot) of URLs to skip; by
            default :data:`DENY_EXTENSIONS`. Pass ``()`` to keep every one.
        nofollow: ``"keep"`` (the default, as Scrapy) returns links with
            ``rel="nofollow"`` too, marked ``Link.nofollow``; ``"skip"``
            leaves them out.
    """

    __slots__ = (
        "_allow",
        "_allow_domains",
        "_allow_suffixes",
        "_attrs",
        "_canonicalize",
        "_deny",
        "_deny_domains",
        "_deny_extensions",
        "_deny_suffixes",
        "_filters",
        "_process_value",
        "_regions",
        "_skip_nofollow",
        "_tags",
        "_unique",
    )

    def __init__(
        self,
        allow: str | re.Pattern[str] | Iterable[str | re.Pattern[str]] = (),
        deny: str | re.Pattern[str] | Iterable[str | re.Pattern[str]] = (),
        allow_domains: str | Iterable[str] = (),
        deny_domains: str | Iterable[str] = (),
        restrict_xpaths: str | Iterable[str] = (),
        restrict_css: str | Iterable[str] = (),
        tags: str | Iterable[str] | None = ("a", "area"),
        attrs: str | Iterable[str] | None = ("href",),
        *,
        canonicalize: bool = False,
        unique: bool = True,
        process_value: Callable[[str], str | None] | None = None,
        deny_extensions: Iterable[str] | None = None,
        nofollow: Literal["keep", "skip"] = "keep",
    ) -> None:
        if nofollow not in ("keep", "skip"):
            raise ValueError(f"nofollow must be 'keep' or 'skip', not {nofollow!r}")
        self._allow = _patterns(allow)
        self._deny = _patterns(deny)
        self._allow_domains = frozenset(map(_domain, _strings(allow_domains)))
        self._deny_domains = frozenset(map(_domain, _strings(deny_domains)))
        self._allow_suffixes = tuple("." + d for d in self._allow_domains)
        self._deny_suffixes = tuple("." + d for d in self._deny_domains)
        self._deny_extensions = (
            DENY_EXTENSIONS
            if deny_extensions is None
            else frozenset(e.lower().lstrip(".") for e in _strings(deny_extensions))
        )
        self._regions = [*_strings(restrict_xpaths)] + [
            _translator.css_to_xpath(q) for q in _strings(restrict_css)
        ]
        self._tags = tuple(t.lower() for t in _strings(tags))
        self._attrs = _strings(attrs)
        self._canonicalize = canonicalize
        self._unique = unique
        self._process_value = process_value
        self._skip_nofollow = nofollow == "skip"
        # Whether any URL filter is set: if none, matches() is skipped.
        self._filters = bool(
            self._allow
            or self._deny
            or self._allow_domains
            or self._deny_domains
            or self._deny_extensions
        )

    def __repr__(self) -> str:
        return f"<LinkExtractor tags={self._tags} attrs={self._attrs}>"

    def matches(self, url: str) -> bool:
        """Whether an absolute http(s) URL passes the URL filters (allow,
        deny, domains, extensions)."""
        allow = self._allow
        if allow and not any(p.search(url) for p in allow):
            return False
        deny = self._deny
        if deny and any(p.search(url) for p in deny):
            return False
        if self._allow_domains or self._deny_domains:
            host = host_of_href(url)
            if self._allow_domains and not (
                host in self._allow_domains or host.endswith(self._allow_suffixes)
            ):
                return False
            if host in self._deny_domains or (
                self._deny_suffixes and host.endswith(self._deny_suffixes)
            ):
                return False
        return not (self._deny_extensions and _extension(url) in self._deny_extensions)

    def extract_links(self, response: Response) -> list[Link]:
        """The links of ``response`` that pass the filters, in document order.

        A body that is not HTML, XML or text (an image, a PDF) has none.
        """
        if not is_markup(response.content_type) or not self._tags or not self._attrs:
            return []
        join = LinkJoiner(response.base_url, response.encoding).join
        tags, attrs, process = self._tags, self._attrs, self._process_value
        canonical, unique, skip_nofollow = self._canonicalize, self._unique, self._skip_nofollow
        filters = self.matches if self._filters else None
        seen: set[str] = set()
        links: list[Link] = []
        # (One loop, no helper calls until a link is kept: this runs per link.)
        for root in self._roots(response):
            for element in root.iter(*tags):
                for attr in attrs:
                    value = element.get(attr)
                    if value is None:
                        continue
                    if process is not None:
                        value = process(value)
                        if value is None:
                            continue
                    try:
                        url = join(value)
                    except ValueError:
                        continue  # (a link that does not parse: nothing to follow)
                    if not url.startswith(("http://", "https://")):
                        continue
                    url, _, fragment = url.partition("#")
                    if canonical:
                        try:
                            url = canonicalize(url)
                        except InvalidURL:
                            continue
                    if unique and url in seen:
                        continue
                    nofollow = _has_nofollow(element.get("rel"))
                    if nofollow and skip_nofollow:
                        continue
                    if unique:
                        seen.add(url)
                    if filters is not None and not filters(url):
                        continue
                    links.append(Link(url, _text_of(element), fragment, nofollow))
        return links

    def _roots(self, response: Response) -> list[Any]:
        """The elements whose links count: the regions, or the document."""
        if not self._regions:
            return [response.selector.root]
        roots: list[Any] = []
        for query in self._regions:
            roots.extend(s.root for s in response.xpath(query) if not isinstance(s.root, str))
        return roots
