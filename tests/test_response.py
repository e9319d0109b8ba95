from __future__ import annotations

import msgspec
import pytest

from crawlmesh import Headers, Request, Response


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


def test_base_href_is_honoured() -> None:
    r = make(b"<html><head><base href='http://cdn.example/root/'></head><a href='x'>x</a></html>")
    assert r.follow("x").url == "http://cdn.example/root/x"


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
