"""Reading sitemap files, with Scrapy's own sitemap cases (its
tests/test_utils_sitemap.py) as an outside oracle: the same inputs must give
the same locations and fields, here as typed entries."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from crawlmesh import DecodingFailed, ResponseTooLarge, SitemapEntry
from crawlmesh._spiders._sitemap_parse import (
    MAX_ENTRIES,
    parse_lastmod,
    parse_sitemap,
    sitemaps_in_robots,
    unpack,
)

GOOGLE_NS = b'<urlset xmlns="http://www.google.com/schemas/sitemap/0.84">'


def day(year: int, month: int, d: int) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_urlset_with_every_field() -> None:
    parsed = parse_sitemap(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + GOOGLE_NS
        + b"""
<url><loc>http://www.example.com/</loc><lastmod>2009-08-16</lastmod>
<changefreq>daily</changefreq><priority>1</priority></url>
<url><loc>http://www.example.com/Special-Offers.html</loc><lastmod>2009-08-16</lastmod>
<changefreq>Weekly</changefreq><priority>0.8</priority></url>
</urlset>"""
    )
    assert parsed.kind == "urlset"
    assert not parsed.broken
    assert parsed.entries == [
        SitemapEntry("http://www.example.com/", day(2009, 8, 16), "daily", 1.0),
        SitemapEntry("http://www.example.com/Special-Offers.html", day(2009, 8, 16), "weekly", 0.8),
    ]


def test_an_index() -> None:
    parsed = parse_sitemap(
        b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>http://www.example.com/sitemap1.xml.gz</loc>
  <lastmod>2004-10-01T18:23:17+00:00</lastmod></sitemap>
<sitemap><loc>http://www.example.com/sitemap2.xml.gz</loc><lastmod>2005-01-01</lastmod></sitemap>
</sitemapindex>"""
    )
    assert parsed.kind == "sitemapindex"
    assert [(e.loc, e.lastmod, e.kind) for e in parsed.entries] == [
        (
            "http://www.example.com/sitemap1.xml.gz",
            datetime(2004, 10, 1, 18, 23, 17, tzinfo=UTC),
            "sitemap",
        ),
        ("http://www.example.com/sitemap2.xml.gz", day(2005, 1, 1), "sitemap"),
    ]


@pytest.mark.parametrize(
    ("root", "child"),
    [
        (GOOGLE_NS, b"<url>"),  # whitespace in <loc>, an empty <lastmod />
        (GOOGLE_NS, b'<url xmlns="">'),  # a wrong namespace on the entries
        (b"<urlset>", b'<url xmlns="">'),  # and none on the root
    ],
)
def test_stray_whitespace_and_wrong_namespaces(root: bytes, child: bytes) -> None:
    parsed = parse_sitemap(
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + root + b"\n" + child
        + b"<loc> http://www.example.com/</loc><lastmod>2009-08-16</lastmod>"
        + b"<changefreq>daily</changefreq><priority>1</priority></url>\n"
        + child + b"<loc> http://www.example.com/2</loc><lastmod /></url>\n</urlset>\n"
    )  # fmt: skip
    assert parsed.kind == "urlset"
    assert parsed.entries == [
        SitemapEntry("http://www.example.com/", day(2009, 8, 16), "daily", 1.0),
        SitemapEntry("http://www.example.com/2"),
    ]


def test_blank_lines_before_the_declaration_and_comments() -> None:
    parsed = parse_sitemap(
        b"""
<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<!-- cache: cached = yes -->
<sitemap><loc>http://www.example.com/sitemap1.xml</loc><!-- a comment --></sitemap>

<sitemap><loc>http://www.example.com/sitemap2.xml</loc></sitemap>
<!-- end cache -->
</sitemapindex>
"""
    )
    assert not parsed.broken
    assert [e.loc for e in parsed.entries] == [
        "http://www.example.com/sitemap1.xml",
        "http://www.example.com/sitemap2.xml",
    ]


def test_alternates_without_href_are_skipped() -> None:
    parsed = parse_sitemap(
        b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
    xmlns:xhtml="http://www.w3.org/1999/xhtml">
  <url><loc>http://www.example.com/english/</loc>
    <xhtml:link rel="alternate" hreflang="de" href="http://www.example.com/deutsch/"/>
    <xhtml:link rel="alternate" hreflang="de-ch" href="http://www.example.com/schweiz-deutsch/"/>
    <xhtml:link rel="alternate" hreflang="en" href="http://www.example.com/english/"/>
    <xhtml:link rel="alternate" hreflang="en"/>
    <xhtml:link rel="canonical" href="http://www.example.com/not-an-alternate/"/>
  </url>
</urlset>"""
    )
    [entry] = parsed.entries
    assert entry.alternates == (
        "http://www.example.com/deutsch/",
        "http://www.example.com/schweiz-deutsch/",
        "http://www.example.com/english/",
    )


def test_an_external_entity_is_not_expanded() -> None:
    parsed = parse_sitemap(
        b"""<?xml version="1.0" encoding="utf-8"?>
      <!DOCTYPE foo [
      <!ELEMENT foo ANY >
      <!ENTITY xxe SYSTEM "file:///etc/passwd" >
      ]>
      <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>http://127.0.0.1:8000/&xxe;</loc></url>
      </urlset>"""
    )
    assert [e.loc for e in parsed.entries] == ["http://127.0.0.1:8000/"]


def test_an_undeclared_entity_where_an_element_should_be() -> None:
    # (lxml gives entity references a tag that is no string.)
    parsed = parse_sitemap(b"<urlset><url>&k;<loc>http://a.example/</loc>&k;</url>&k;</urlset>")
    assert [e.loc for e in parsed.entries] == ["http://a.example/"]
    assert parsed.broken  # an undeclared entity is an error, recovered


def test_more_entries_than_the_protocol_allows_are_dropped() -> None:
    body = "".join(f"<url><loc>http://a.example/{n}</loc></url>" for n in range(MAX_ENTRIES + 2))
    parsed = parse_sitemap(f"<urlset>{body}</urlset>".encode())
    assert len(parsed.entries) == MAX_ENTRIES
    assert parsed.entries[-1].loc == f"http://a.example/{MAX_ENTRIES - 1}"
    assert parsed.dropped == 2


def test_fields_that_do_not_parse_are_none() -> None:
    parsed = parse_sitemap(
        b"<urlset><url><loc>http://a.example/</loc><lastmod>soon</lastmod>"
        b"<priority>high</priority><changefreq></changefreq></url>"
        b"<url><loc>http://a.example/2</loc><priority>7</priority></url>"
        b"<url><lastmod>2020-01-01</lastmod></url></urlset>"
    )
    assert parsed.entries == [SitemapEntry("http://a.example/"), SitemapEntry("http://a.example/2")]


def test_the_sitemaps_of_a_robots_txt() -> None:
    robots = b"""User-agent: *
Disallow: /aff/

# Sitemap files
Sitemap: http://example.com/sitemap.xml
Sitemap: http://example.com/sitemap-product-index.xml
Sitemap: HTTP://example.com/sitemap-uppercase.xml
Sitemap: /sitemap-relative-url.xml

Disallow: /forum/search/
"""
    assert sitemaps_in_robots(robots) == [
        "http://example.com/sitemap.xml",
        "http://example.com/sitemap-product-index.xml",
        "HTTP://example.com/sitemap-uppercase.xml",  # (admission normalises it)
        "/sitemap-relative-url.xml",  # (the spider joins it to the robots.txt URL)
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1997", datetime(1997, 1, 1, tzinfo=UTC)),
        ("1997-07", datetime(1997, 7, 1, tzinfo=UTC)),
        ("1997-07-16", datetime(1997, 7, 16, tzinfo=UTC)),
        ("1997-07-16T19:20+01:00", at("1997-07-16T19:20:00+01:00")),
        ("1997-07-16T19:20:30+01:00", at("1997-07-16T19:20:30+01:00")),
        ("1997-07-16T19:20:30.45-0530", at("1997-07-16T19:20:30.450000-05:30")),
        ("1997-07-16T19:20:30Z", datetime(1997, 7, 16, 19, 20, 30, tzinfo=UTC)),
        ("  2024-02-29  ", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2023-02-29", None),
        ("1997-13", None),
        ("1997-07-16T25:00Z", None),
        ("1997-07-16T10:00+24:00", None),
        ("16/07/1997", None),
        ("", None),
    ],
)  # fmt: skip
def test_w3c_datetimes(value: str, expected: datetime | None) -> None:
    assert parse_lastmod(value) == expected
    if expected is not None:
        assert parse_lastmod(value).utcoffset() == expected.utcoffset()  # type: ignore[union-attr]


def test_unpack_gunzips_by_magic_bytes_within_the_limit() -> None:
    xml = b"<urlset><url><loc>http://a.example/</loc></url></urlset>"
    assert unpack(xml, 10) == xml  # not gzip: as it is, whatever its size
    assert unpack(gzip.compress(xml), len(xml)) == xml
    assert unpack(gzip.compress(xml) * 2, 2 * len(xml)) == xml * 2  # two members
    with pytest.raises(ResponseTooLarge):
        unpack(gzip.compress(xml), len(xml) - 1)
    with pytest.raises(ResponseTooLarge):
        unpack(gzip.compress(b"\0" * (100 << 20)), 1 << 20)  # a bomb
    with pytest.raises(DecodingFailed):
        unpack(gzip.compress(xml)[:-10], 1 << 20)  # truncated
