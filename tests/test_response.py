from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import Headers, Request, Response
from crawlmesh._selector import html_selector


def make(
    body: bytes, url: str = "http://example.com/dir/page.html", ctype: str = "text/html"
) -> Response:
    return Response(url, 200, Headers([("Content-Type", ctype)]), body, Request(url))


PAGE = b"""<html><head><title>T</title></head><body>
<h1>Hello <b>world</b></h1>
<a href="/abs">1</a> <a href="rel.html">2</a> <a class="x" href="https://other.example/x">3</a>
<a name="no-href">4</a>
</body></html>"""


def test_css_and_xpath_follow_parsel_syntax() -> None:
    r = make(PAGE)
    assert r.css("h1::text").get() == "Hello "
    assert r.css("a::attr(href)").getall() == ["/abs", "rel.html", "https://other.example/x"]
    assert r.xpath("//title/text()").get() == "T"
    assert r.css("h2::text").get() is None


def test_urljoin_follow_and_follow_all() -> None:
    r = make(PAGE)
    assert r.urljoin("rel.html") == "http://example.com/dir/rel.html"
    assert r.follow("/abs").url == "http://example.com/abs"
    assert r.follow(r.css("a.x")[0]).url == "https://other.example/x"
    assert r.follow(r.css("a::attr(href)")[1]).url == "http://example.com/dir/rel.html"
    with pytest.raises(ValueError, match="without href"):
        r.follow(r.css("a")[3])
    urls = [req.url for req in r.follow_all(css="a")]
    assert urls == [
        "http://example.com/abs",
        "http://example.com/dir/rel.html",
        "https://other.example/x",
    ]
    cb = object()
    assert all(req.callback is cb for req in r.follow_all(["a", "b"], callback=cb, priority=3))


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"<html><head><base href='http://cdn.example/root/'></head></html>", "text/html"),
        (b"<HTML><HEAD><Base HREF='http://cdn.example/root/'></HEAD></HTML>", "text/html"),
        (
            "<html><head><base href='http://cdn.example/root/'></head></html>".encode("utf-16"),
            "text/html",
        ),
        (
            "<html><head><base href='http://cdn.example/root/'></head></html>".encode("utf-16-be"),
            "text/html; charset=utf-16",
        ),
    ],
)
def test_base_href_is_honoured(body: bytes, ctype: str) -> None:
    r = make(body + b"<a href='x'>x</a>", ctype=ctype)
    assert r.follow("x").url == "http://cdn.example/root/x"
    assert make(b"<p>no base</p>").follow("x").url == "http://example.com/dir/x"


@pytest.mark.parametrize(
    ("body", "ctype", "text"),
    [
        ("caf\u00e9".encode("latin-1"), "text/html; charset=iso-8859-1", "caf\u00e9"),
        ("caf\u00e9".encode(), "text/html; charset=utf-8", "caf\u00e9"),
        ("\ufeffcaf\u00e9".encode(), "text/html", "caf\u00e9"),
        (
            "<meta charset='windows-1251'>\u041f\u0440\u0438".encode("cp1251"),
            "text/html",
            "<meta charset='windows-1251'>\u041f\u0440\u0438",
        ),
        (b"bad \xff bytes", "text/html; charset=utf-8", "bad \ufffd bytes"),
    ],
)
def test_text_charset_detection(body: bytes, ctype: str, text: str) -> None:
    assert make(body, ctype=ctype).text == text


def test_json_and_meta() -> None:
    req = Request("http://example.com/api", meta={"k": 1})
    r = Response(req.url, 200, Headers(), b'{"a": [1, 2]}', req)
    assert r.json() == {"a": [1, 2]}
    assert r.meta == {"k": 1}
    with pytest.raises(msgspec.DecodeError):
        make(b"not json").json()


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X-One", "1")])
    assert h["x-one"] == "1"
    assert "X-ONE" in h
    assert h.get_list("SET-COOKIE") == ["a=1", "b=2"]
    assert h["set-cookie"] == "a=1, b=2"


def test_request_defaults_are_not_shared() -> None:
    a, b = Request("http://a/"), Request("http://b/")
    a.meta["x"] = 1
    assert b.meta == {}
    assert a.replace(url="http://c/").meta == {"x": 1}


# The selector is built from the body's bytes when they are valid UTF-8; it
# must be the very document the decoded text gives (parsel's path).
_PIECES = [
    b"<p class='a'>x</p>",
    b"<a href='/\xc3\xa9'>\xc2\xa3</a>",
    b" ",
    b"\n",
    b"\x00",
    b"\x1c",
    b"\x1f",
    b"\xe3\x80\x80",  # U+3000, a non-ASCII space
    b"\xc2\x85",  # U+0085
    b"\xc2\xa0",  # U+00A0
    b"\xff",  # not UTF-8
    b"\xe3\x80",  # a cut sequence: one U+FFFD for Python, two for libxml2
    b"\xef\xbf\xbd",  # U+FFFD itself
    b"\xef\xbb\xbf",  # a BOM (when first)
    b"<meta charset='latin-1'>",
    b"<!-- c -->",
]


def _same_document(response: Response, reference: str) -> None:
    ours = response.selector
    theirs = html_selector(reference, response.url)
    assert ours.get() == theirs.get()
    for query in ("p::text", "a::attr(href)", "a::text", "*::text"):
        assert ours.css(query).getall() == theirs.css(query).getall()


@given(st.lists(st.sampled_from(_PIECES), max_size=8), st.booleans())
def test_the_selector_is_the_documents_whichever_path_builds_it(
    pieces: list[bytes], text_first: bool
) -> None:
    body = b"".join(pieces)
    response = make(body)
    if text_first:
        _ = response.text  # the selector then starts from decoded text
    _same_document(response, make(body).text)


@pytest.mark.parametrize(
    "body",
    [
        b"\x1c<p class='a'>x</p>",
        b"<p class='a'>x</p>\xe3\x80\x80",
        b"\xef\xbb\xbf<p class='a'>x</p>",
        b"<p class='a'>bad \xff</p>",
        b"<p class='a'>cut \xf0\x9f\x98 short</p>",
        b"  <p class='a'>\x00caf\xc3\xa9</p>\n",
        b"",
    ],
)
@pytest.mark.parametrize("text_first", [False, True])
def test_the_selector_of_tricky_bodies_matches_the_text_path(body: bytes, text_first: bool) -> None:
    response = make(body)
    if text_first:
        _ = response.text
    _same_document(response, make(body).text)


# -- what the body is (content type) -----------------------------------------

ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00<title>not a page</title>\x00\x01\x02"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR<a href='/x'>x</a>"


@pytest.mark.parametrize(
    ("ctype", "body", "expected"),
    [
        ("text/html; charset=utf-8", b"<p>x</p>", "text/html"),
        ("Application/XHTML+XML", b"<p>x</p>", "application/xhtml+xml"),
        ("application/zip", ZIP, "application/zip"),
        ("text/html", ZIP, "text/html"),  # a declared type is trusted, as browsers do
        (None, b"  \n<!DOCTYPE html><p>x</p>", "text/html"),
        (None, b"<P>x</p>", "text/html"),
        (None, b"<!-- c --><p>x</p>", "text/html"),
        (None, b"<?xml version='1.0'?><r/>", "text/xml"),
        (None, ZIP, "application/zip"),
        (None, PNG, "image/png"),
        (None, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3<title>x</title>", "application/pdf"),
        (None, b"\x1f\x8b\x08\x00\x00\x00", "application/x-gzip"),
        (None, b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (None, b"just some words, caf\xc3\xa9", "text/plain"),
        (None, b"<abbr>x</abbr>", "text/plain"),  # not one of the HTML patterns
        (None, b"\x00\x01\x02<title>x</title>", "application/octet-stream"),
        ("", b"<html>", "text/html"),
        ("*/*", PNG, "image/png"),
        ("garbage", b"<html>", "text/html"),  # not a MIME type: sniffed
    ],
)
def test_content_type_is_declared_or_sniffed(ctype: str | None, body: bytes, expected: str) -> None:
    url = "http://example.com/f"
    headers = Headers([] if ctype is None else [("Content-Type", ctype)])
    assert Response(url, 200, headers, body, Request(url)).content_type == expected


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (ZIP, "application/zip"),
        (PNG, "image/png"),
        (b"%PDF-1.4 <title>x</title>", "application/pdf"),
        (b'{"a": "<title>x</title>"}', "application/json"),
        (b"<title>x</title>", "application/octet-stream"),
    ],
)
def test_selectors_refuse_a_body_that_is_not_text(body: bytes, ctype: str) -> None:
    from crawlmesh import NotTextResponse

    r = make(body, url="http://example.com/files/a.bin", ctype=ctype)
    for ask in (lambda: r.css("title::text"), lambda: r.xpath("//title"), lambda: r.selector):
        with pytest.raises(NotTextResponse, match=r"http://example\.com/files/a\.bin is ") as info:
            ask()
        assert info.value.content_type == ctype
        assert info.value.url == r.url
    # No links come out of it, and what was given explicitly is still followed.
    assert list(r.follow_all(css="a")) == []
    assert list(r.follow_all(xpath="//a")) == []
    assert [q.url for q in r.follow_all(["b"])] == ["http://example.com/files/b"]
    # The bytes and the text stay at hand.
    assert r.body == body
    assert isinstance(r.text, str)


def test_json_says_to_use_json_and_its_text_still_works() -> None:
    from crawlmesh import NotTextResponse

    r = make(b'{"a": "caf\xc3\xa9"}', ctype="application/json")
    with pytest.raises(NotTextResponse, match=r"use response\.json\(\)"):
        r.css("a")
    assert r.text == '{"a": "caf\u00e9"}'
    assert r.json() == {"a": "caf\u00e9"}


@pytest.mark.parametrize(
    "ctype",
    ["text/html", "text/plain", "text/xml", "application/xml", "image/svg+xml", None],
)
def test_text_and_markup_types_keep_their_selectors(ctype: str | None) -> None:
    url = "http://example.com/f"
    headers = Headers([] if ctype is None else [("Content-Type", ctype)])
    r = Response(url, 200, headers, b"<p>a <a href='/x'>x</a></p>", Request(url))
    assert r.css("a::attr(href)").get() == "/x"
    assert [q.url for q in r.follow_all(css="a")] == ["http://example.com/x"]


# -- the charset of a page that declares none (HTML Standard) -------------------


@pytest.mark.parametrize(
    ("body", "ctype", "text", "encoding"),
    [
        # Invalid UTF-8 and nothing declared: windows-1252, as browsers.
        (b"<p>\xe9 \x80 \x93x\x94</p>", "text/html", "<p>\xe9 \u20ac \u201cx\u201d</p>", "cp1252"),
        # The five bytes cp1252 leaves out are WHATWG's C1 controls.
        (b"\xe9\x81\x8d\x8f\x90\x9d", "text/html", "\u00e9\x81\x8d\x8f\x90\x9d", "cp1252"),
        (b"<p>caf\xc3\xa9</p>", "text/html", "<p>caf\u00e9</p>", "utf8"),  # valid UTF-8
        (b"<p>plain</p>", None, "<p>plain</p>", "utf8"),
        (b"<p>caf\xe9</p>", None, "<p>caf\u00e9</p>", "cp1252"),
        # Declared UTF-8 stays UTF-8, its invalid bytes replaced.
        (b"<p>caf\xe9</p>", "text/html; charset=utf-8", "<p>caf\ufffd</p>", "utf-8"),
        (b"<meta charset=utf-8><p>\xe9</p>", None, "<meta charset=utf-8><p>\ufffd</p>", "utf-8"),
        # JSON is UTF-8 whatever its bytes (RFC 8259).
        (b'"caf\xe9"', "application/json", '"caf\ufffd"', "utf8"),
    ],
)
def test_an_undeclared_charset_falls_back_like_a_browser(
    body: bytes, ctype: str | None, text: str, encoding: str
) -> None:
    url = "http://example.com/f"
    headers = Headers([] if ctype is None else [("Content-Type", ctype)])
    r = Response(url, 200, headers, body, Request(url))
    assert r.text == text
    assert r.encoding == encoding
    # The selector reads the same characters.
    if "<p>" in text:
        assert r.css("p::text").get() == text.split("<p>")[1].split("</p>")[0]


@given(st.binary(max_size=64))
def test_undeclared_bodies_decode_as_utf8_when_valid_else_windows_1252(body: bytes) -> None:
    r = make(b"<p>" + body, ctype="text/html")
    try:
        expected = (b"<p>" + body).decode("utf-8")
    except UnicodeDecodeError:
        expected = "".join(
            chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252")
            for b in b"<p>" + body
        )
    assert r.text == expected
