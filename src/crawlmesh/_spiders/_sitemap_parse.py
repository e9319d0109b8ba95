"""Reading sitemaps: XML urlsets and indexes (sitemaps.org 0.9), plain-text
sitemaps, gzip files, and the ``Sitemap:`` lines of robots.txt.

Everything here is a pure function of bytes, so it can run in a worker
thread for a large file. The XML parser is locked down: no DTD loading, no
entity expansion (an ``&xxe;`` stays an unexpanded reference: no file or URL
is read, and a billion laughs expands to nothing), no network, no huge-tree
mode (libxml2's own depth and size limits stay on). It runs in recover mode:
a file broken half-way keeps what was read before the break.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal

import lxml.etree
import msgspec
from protego import Protego

from .._transport._decoding import make_decoder

__all__ = [
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "ParsedSitemap",
    "SitemapEntry",
    "parse_lastmod",
    "parse_sitemap",
    "sitemaps_in_robots",
    "unpack",
]

MAX_ENTRIES: Final = 50_000
"""The most entries one sitemap file may list (sitemaps.org)."""
MAX_FILE_BYTES: Final = 50 * 1024 * 1024
"""The largest a sitemap file may be, uncompressed (sitemaps.org: 50 MB)."""

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class SitemapEntry(msgspec.Struct, frozen=True):
    """One ``<url>`` of a urlset, one ``<sitemap>`` of an index, or one line
    of a plain-text sitemap, as :meth:`SitemapSpider.sitemap_filter` sees it.

    Attributes:
        loc: the URL, as written (whitespace stripped).
        lastmod: ``<lastmod>`` as an aware datetime (UTC when the value has
            no offset, as a bare date has none), or None if missing or not
            a W3C datetime.
        changefreq: ``<changefreq>`` lowercased (``"daily"``...), or None.
        priority: ``<priority>`` (0.0-1.0), or None if missing or not a number.
        alternates: the ``href`` of each ``xhtml:link rel="alternate"``
            (hreflang versions of the page), in order.
        kind: ``"url"`` for a page (urlset or text sitemap), ``"sitemap"``
            for an index's entry (another sitemap).
    """

    loc: str
    lastmod: datetime | None = None
    changefreq: str | None = None
    priority: float | None = None
    alternates: tuple[str, ...] = ()
    kind: Literal["url", "sitemap"] = "url"


class ParsedSitemap(msgspec.Struct):
    """What one sitemap file held.

    Attributes:
        kind: ``"urlset"``, ``"sitemapindex"``, ``"text"``, or ``"none"``
            (not a sitemap: HTML, an XML document of another kind, prose).
        entries: the entries, at most :data:`MAX_ENTRIES`.
        broken: the XML parser's first error, when the file is not
            well-formed (the entries are those it recovered).
        dropped: entries past :data:`MAX_ENTRIES`, not kept.
        cut: the file was longer than :data:`MAX_FILE_BYTES`; only the
            entries before that point were read.
    """

    kind: Literal["urlset", "sitemapindex", "text", "none"]
    entries: list[SitemapEntry] = []
    broken: str = ""
    dropped: int = 0
    cut: bool = False


def unpack(body: bytes, max_size: int) -> bytes:
    """The body, gunzipped if it is a gzip file (by its magic bytes,
    whatever the Content-Type said), with the transport's bounded decoder.

    Raises:
        ResponseTooLarge: it decompresses to more than ``max_size`` bytes.
        DecodingFailed: a corrupt or truncated gzip file.
    """
    if not body.startswith(_GZIP_MAGIC):
        return body
    decoder = make_decoder("gzip", max_size)
    decoder.feed(body)
    return decoder.finish()


def parse_sitemap(data: bytes) -> ParsedSitemap:
    """Read an (uncompressed) sitemap file: XML if it starts with ``<``,
    else a plain-text sitemap (one URL per line)."""
    cut = len(data) > MAX_FILE_BYTES
    data = data.removeprefix(_BOM).lstrip()
    if data.startswith(b"<"):
        if cut:
            # End at a tag's '>' so that no text node (a <loc>) is cut short.
            data = data[: data.rfind(b">", 0, MAX_FILE_BYTES) + 1]
        parsed = _parse_xml(data)
    else:
        if cut:
            data = data[: data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1]
        parsed = _parse_text(data)
    parsed.cut = cut
    return parsed


def _parser() -> lxml.etree.XMLParser:
    return lxml.etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        recover=True,
        remove_comments=True,
        remove_pis=True,
    )


def _parse_xml(data: bytes) -> ParsedSitemap:
    parser = _parser()
    try:
        root = lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError as exc:  # (recover mode rarely gives up)
        return ParsedSitemap("none", broken=str(exc))
    errors = [e for e in parser.error_log if e.level >= lxml.etree.ErrorLevels.ERROR]
    broken = f"line {errors[0].line}: {errors[0].message}" if errors else ""
    kind = _local(root) if root is not None else ""
    if kind not in ("urlset", "sitemapindex"):
        return ParsedSitemap("none", broken=broken)
    entry_kind: Literal["url", "sitemap"] = "url" if kind == "urlset" else "sitemap"
    entries: list[SitemapEntry] = []
    dropped = 0
    for child in root:
        entry = _entry(child, entry_kind)
        if entry is None:
            continue
        if len(entries) >= MAX_ENTRIES:
            dropped += 1
        else:
            entries.append(entry)
    return ParsedSitemap(kind, entries, broken=broken, dropped=dropped)  # type: ignore[arg-type]


def _local(element: Any) -> str:
    """An element's tag without its namespace ("" for an entity reference,
    whose ``tag`` is no string)."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _entry(element: Any, kind: Literal["url", "sitemap"]) -> SitemapEntry | None:
    # Any element with a <loc> counts, whatever its own name and namespace:
    # sitemaps with a wrong or missing namespace are common.
    fields: dict[str, str] = {}
    alternates: list[str] = []
    for sub in element:
        name = _local(sub)
        if name == "link":
            href = sub.get("href")
            if sub.get("rel") == "alternate" and href and href.strip():
                alternates.append(href.strip())
        elif name and name not in fields:
            fields[name] = (sub.text or "").strip()
    loc = fields.get("loc", "")
    if not loc:
        return None
    return SitemapEntry(
        loc,
        lastmod=parse_lastmod(fields.get("lastmod", "")),
        changefreq=fields.get("changefreq", "").lower() or None,
        priority=_priority(fields.get("priority", "")),
        alternates=tuple(alternates),
        kind=kind,
    )


def _priority(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None


_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


def _parse_text(data: bytes) -> ParsedSitemap:
    entries: list[SitemapEntry] = []
    dropped = 0
    for line in _lines(data):
        if not _HTTP_URL.match(line):
            continue  # (sitemaps.org: nothing but URLs; we skip the rest)
        if len(entries) >= MAX_ENTRIES:
            dropped += 1
        else:
            entries.append(SitemapEntry(line))
    if not entries:
        return ParsedSitemap("none")
    return ParsedSitemap("text", entries, dropped=dropped)


def _lines(data: bytes) -> Iterator[str]:
    for raw in data.splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if line:
            yield line


def sitemaps_in_robots(body: bytes) -> list[str]:
    """The ``Sitemap:`` URLs of a robots.txt, as written (relative ones
    are for the caller to join), read by protego as the engine reads rules."""
    text = body.decode("utf-8", "replace")
    return [url.strip() for url in Protego.parse(text).sitemaps if url.strip()]


# W3C Datetime (https://www.w3.org/TR/NOTE-datetime), the <lastmod> format:
# YYYY, YYYY-MM, YYYY-MM-DD, then optionally Thh:mm[:ss[.s+]] and TZD.
_W3C = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?)?)?)?$"
)


def parse_lastmod(value: str) -> datetime | None:
    """A W3C datetime as an aware datetime (UTC if it names no offset), or
    None if ``value`` is not one."""
    match = _W3C.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, tzd = match.groups()
    tz: timezone = UTC
    if tzd and tzd not in ("Z", "z"):
        sign = -1 if tzd[0] == "-" else 1
        digits = tzd[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(sign * offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError:  # month 13, day 32, hour 25...
        return None
