"""LinkExtractor on pages served on loopback (fetched by a one-page crawl,
so the Response is the one a callback gets), and on a few pages built in
memory for Scrapy's own expectations (tests/test_linkextractors.py in Scrapy,
re-expressed: the outside oracle for what a ported project relies on)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawling import run_spider
from crawlmesh import (
    Headers,
    Link,
    LinkExtractor,
    Request,
    Response,
    SiteRequest,
    SiteResponse,
    Spider,
    open_site_server,
)
from crawlmesh._links import DENY_EXTENSIONS, host_of_href

HTML = [("Content-Type", "text/html; charset=utf-8")]

PAGES = {
    "/dir/links.html": b"""<html><head><title>links</title></head><body>
<div id="nav"><a href="/">Home</a> <a href="../about.html">About <b>us</b></a></div>
<div class="list">
  <a href="item/1.html">One</a>
  <a href="item/1.html#reviews">One again, with a fragment</a>
  <a href="  item/2.html  ">Two,
     with white space</a>
  <a href="http://sub.shop.example/x">Subdomain</a>
  <a href="https://other.example/y" rel="external NoFollow">Elsewhere</a>
  <a href="mailto:someone@example.com">Mail</a>
  <a href="javascript:void(0)">Script</a>
  <a href="tel:+100">Phone</a>
  <a href="http://[::1">Broken</a>
  <a href="photo.JPG">Photo</a>
  <a href="archive.tar.gz">Archive</a>
  <a>No href</a>
  <area href="/map" alt="map">
</div>
</body></html>""",
    "/base.html": b"""<html><head><base href="http://cdn.example/root/"></head><body>
<a href="page.html">relative</a> <a href="/top">absolute path</a>
<a href="https://kept.example/z">absolute</a></body></html>""",
    "/photo.png": b"\x89PNG\r\n\x1a\n not html",
}


async def site(request: SiteRequest, stream: Any) -> SiteResponse:
    body = PAGES.get(request.target)
    if body is None:
        return SiteResponse(404, b"no", HTML)
    ctype = [("Content-Type", "image/png")] if request.target.endswith(".png") else HTML
    return SiteResponse(200, body, ctype)


class Fetch(Spider):
    """Keeps the responses of its start URLs."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls
        self.responses: dict[str, Response] = {}

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url)

    def parse(self, response: Response) -> Iterator[Any]:
        self.responses[response.url.rsplit("/", 1)[1]] = response
        return iter(())


@pytest.fixture
async def pages(tmp_path: Path) -> dict[str, Response]:
    async with open_site_server(site) as base:
        spider = Fetch([f"{base}{path}" for path in PAGES])
        await run_spider(spider, tmp_path, **{"robots.obey": False})
    assert set(spider.responses) == {"links.html", "base.html", "photo.png"}
    return spider.responses


def paths(links: list[Link]) -> list[str]:
    """The URLs, with the loopback origin cut off."""
    return [re.sub(r"^http://127\.0\.0\.1:\d+", "", link.url) for link in links]


async def test_defaults_resolve_filter_and_dedupe(pages: dict[str, Response]) -> None:
    links = LinkExtractor().extract_links(pages["links.html"])
    # In document order; each URL once (the first link to it); mailto:,
    # javascript:, tel:, unparsable links and images/archives left out.
    assert paths(links) == [
        "/",
        "/about.html",
        "/dir/item/1.html",
        "/dir/item/2.html",
        "http://sub.shop.example/x",
        "https://other.example/y",
        "/map",
    ]
    by_url = {p: link for p, link in zip(paths(links), links, strict=True)}
    assert by_url["/about.html"].text == "About us"
    assert by_url["/dir/item/2.html"].text == "Two, with white space"
    assert by_url["/map"].text == ""
    assert by_url["https://other.example/y"].nofollow
    assert not any(link.nofollow for p, link in by_url.items() if "other" not in p)


async def test_fragments_are_kept_apart_and_dedupe_can_be_off(pages: dict[str, Response]) -> None:
    links = LinkExtractor(allow=r"/item/", unique=False).extract_links(pages["links.html"])
    assert paths(links) == ["/dir/item/1.html", "/dir/item/1.html", "/dir/item/2.html"]
    assert [link.fragment for link in links] == ["", "reviews", ""]


async def test_allow_deny_and_domains(pages: dict[str, Response]) -> None:
    page = pages["links.html"]
    assert paths(LinkExtractor(allow=r"item", deny=r"/2\.").extract_links(page)) == [
        "/dir/item/1.html"
    ]
    # A domain matches itself and its subdomains, and nothing else.
    assert paths(LinkExtractor(allow_domains="shop.example").extract_links(page)) == [
        "http://sub.shop.example/x"
    ]
    assert paths(LinkExtractor(allow_domains=["SUB.shop.example."]).extract_links(page)) == [
        "http://sub.shop.example/x"
    ]
    kept = paths(LinkExtractor(deny_domains=["example", "127.0.0.1"]).extract_links(page))
    assert kept == []
    assert paths(LinkExtractor(allow_domains="hop.example").extract_links(page)) == []


async def test_restrict_regions(pages: dict[str, Response]) -> None:
    page = pages["links.html"]
    assert paths(LinkExtractor(restrict_css="#nav").extract_links(page)) == ["/", "/about.html"]
    assert paths(LinkExtractor(restrict_xpaths="//div[@id='nav']/a[2]").extract_links(page)) == [
        "/about.html"
    ]
    # Two regions: links of both, in the order of the queries, once each.
    both = LinkExtractor(restrict_css=["#nav", "div"]).extract_links(page)
    assert paths(both)[:3] == ["/", "/about.html", "/dir/item/1.html"]
    assert len(both) == len(set(paths(both))) == 7


async def test_nofollow_skip_tags_attrs_extensions(pages: dict[str, Response]) -> None:
    page = pages["links.html"]
    skip = paths(LinkExtractor(nofollow="skip").extract_links(page))
    assert "https://other.example/y" not in skip
    assert len(skip) == 6
    assert paths(LinkExtractor(tags="area").extract_links(page)) == ["/map"]
    assert paths(LinkExtractor(tags="img", attrs="src").extract_links(page)) == []
    every = paths(LinkExtractor(deny_extensions=()).extract_links(page))
    assert "/dir/photo.JPG" in every
    assert "/dir/archive.tar.gz" in every
    only = paths(LinkExtractor(deny_extensions=[".HTML"]).extract_links(page))
    assert "/dir/photo.JPG" in only
    assert not any(p.endswith(".html") for p in only)


async def test_process_value_and_canonicalize(pages: dict[str, Response]) -> None:
    page = pages["links.html"]

    def only_items(value: str) -> str | None:
        return value.replace("item/", "items/") if "item/" in value else None

    assert paths(LinkExtractor(process_value=only_items).extract_links(page)) == [
        "/dir/items/1.html",
        "/dir/items/2.html",
    ]
    body = b'<a href="/s?b=2&a=1">x</a> <a href="/s?a=1&b=2#f">y</a> <a href="/%7Euser">z</a>'
    page = make(body)
    plain = LinkExtractor().extract_links(page)
    assert [link.url for link in plain] == [
        "http://example.org/s?b=2&a=1",
        "http://example.org/s?a=1&b=2",
        "http://example.org/%7Euser",
    ]
    canonical = LinkExtractor(canonicalize=True).extract_links(page)
    assert [link.url for link in canonical] == [
        "http://example.org/s?a=1&b=2",
        "http://example.org/~user",
    ]
    assert canonical[0].text == "x"


async def test_base_href_and_bodies_without_links(pages: dict[str, Response]) -> None:
    links = LinkExtractor().extract_links(pages["base.html"])
    assert [link.url for link in links] == [
        "http://cdn.example/root/page.html",
        "http://cdn.example/top",
        "https://kept.example/z",
    ]
    assert LinkExtractor().extract_links(pages["photo.png"]) == []


def test_rejects_a_bad_nofollow_option() -> None:
    with pytest.raises(ValueError, match="'keep' or 'skip'"):
        LinkExtractor(nofollow="drop")  # type: ignore[arg-type]


# -- Scrapy's expectations (an outside oracle) ------------------------------


def make(body: bytes, url: str = "http://example.org/somepage/index.html") -> Response:
    return Response(url, 200, Headers(HTML), body, Request(url))


def test_scrapy_nofollow_marks() -> None:
    # rel values are a space-separated list; "nofollow" anywhere in it counts.
    page = make(
        b'<a href="/a">A</a><a href="/b" rel="nofollow">B</a>'
        b'<a href="/c" rel="blah">C</a><a href="http://g.example/" rel="external nofollow">G</a>'
    )
    assert [(link.url, link.nofollow) for link in LinkExtractor().extract_links(page)] == [
        ("http://example.org/a", False),
        ("http://example.org/b", True),
        ("http://example.org/c", False),
        ("http://g.example/", True),
    ]


def test_scrapy_matches() -> None:
    url1, url2 = "http://lotsofstuff.com/stuff1/index", "http://evenmorestuff.com/uglystuff/index"
    assert LinkExtractor(allow=r"stuff1").matches(url1)
    assert not LinkExtractor(allow=r"stuff1").matches(url2)
    assert not LinkExtractor(deny=r"uglystuff").matches(url2)
    assert LinkExtractor(allow_domains="evenmorestuff.com").matches(url2)
    assert not LinkExtractor(deny_domains="lotsofstuff.com").matches(url1)
    both = LinkExtractor(
        allow="blah1", deny="blah2", allow_domains="blah1.com", deny_domains="blah2.com"
    )
    hosts, paths_ = ("blah1.com", "blah2.com"), ("blah1", "blah2")
    verdicts = [both.matches(f"http://{h}/{p}") for h in hosts for p in paths_]
    assert verdicts == [True, False, False, False]


def test_scrapy_query_only_link_keeps_an_encoded_slash() -> None:
    page = make(b'<div><a href="?page=2">BinB</a></div>', url="http://known.fm/AC%2FDC/")
    links = LinkExtractor().extract_links(page)
    assert links == [Link("http://known.fm/AC%2FDC/?page=2", "BinB")]
    assert LinkExtractor(restrict_xpaths="//div").extract_links(page) == links


def test_scrapy_entities_and_a_legacy_charset() -> None:
    # The path is UTF-8 whatever the page's charset; the query uses it.
    body = b'<html><body><p><a href="/&hearts;/you?c=&euro;">text</a></p></body></html>'
    page = Response(
        "http://example.org/somepage/index.html",
        200,
        Headers([("Content-Type", "text/html; charset=iso8859-15")]),
        body,
        Request("http://example.org/somepage/index.html"),
    )
    assert LinkExtractor(restrict_xpaths="//p").extract_links(page) == [
        Link("http://example.org/%E2%99%A5/you?c=%A4", "text")
    ]


def test_scrapy_wrong_href_and_tags_attrs() -> None:
    page = make(
        b'<a href="http://example.org/item1.html">Item 1</a>'
        b'<a href="http://[example.org/item2.html">Item 2</a>'
        b'<a href="http://example.org/item3.html">Item 3</a>'
    )
    assert [link.text for link in LinkExtractor().extract_links(page)] == ["Item 1", "Item 3"]
    page = make(
        b'<div id="item1" data-url="get?id=1"><a href="#">Item 1</a></div>'
        b'<div id="item2" data-url="get?id=2"><a href="#">Item 2</a></div>',
        url="http://example.com/index.html",
    )
    assert LinkExtractor(tags="div", attrs="data-url").extract_links(page) == [
        Link("http://example.com/get?id=1", "Item 1"),
        Link("http://example.com/get?id=2", "Item 2"),
    ]
    assert LinkExtractor(tags=None).extract_links(page) == []
    assert LinkExtractor(attrs=None).extract_links(page) == []


def test_scrapy_ignored_extensions() -> None:
    page = make(b'<a href="page.html">asd</a> and <a href="photo.jpg">', url="http://example.org/")
    assert LinkExtractor().extract_links(page) == [Link("http://example.org/page.html", "asd")]
    assert LinkExtractor(deny_extensions=["html"]).extract_links(page) == [
        Link("http://example.org/photo.jpg")
    ]


def test_deny_extensions_cover_the_binary_kinds() -> None:
    for ext in ("jpg", "png", "gif", "zip", "gz", "mp3", "mp4", "pdf", "docx", "xlsx", "exe"):
        assert ext in DENY_EXTENSIONS
    for ext in ("html", "htm", "php", "asp", "xml", "json", "txt"):
        assert ext not in DENY_EXTENSIONS


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,7}(\.[a-z][a-z0-9]{0,7}){0,3}", fullmatch=True)
    | st.sampled_from(["[::1]", "[2001:db8::1]", "10.0.0.1"]),
    user=st.sampled_from(["", "u@", "u:p@"]),
    port=st.sampled_from(["", ":8080"]),
)
def test_host_of_a_serialised_url(host: str, user: str, port: str) -> None:
    from ada_url import URL

    url = URL(f"http://{user}{host}{port}/p?q=/x").href
    assert host_of_href(url) == URL(url).hostname
