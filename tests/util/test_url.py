from __future__ import annotations

from collections import Counter

import pytest
from ada_url import URL, join_url
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlmesh import Headers, InvalidURL, Request, Response
from crawlmesh._frontier import Admission, FingerprintSet
from crawlmesh._util._url import LinkJoiner, canonicalize, encode_query, fingerprint, normalize


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com/a#frag", "http://example.com/a"),
        ("http://example.com/a?b=2&a=1", "http://example.com/a?a=1&b=2"),
        ("http://example.com/a?b=&a=1", "http://example.com/a?a=1&b="),
        ("http://example.com/caf\u00e9", "http://example.com/caf%C3%A9"),
        ("http://example.com/caf%C3%A9", "http://example.com/caf%C3%A9"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://user:pw@Example.com/", "http://user:pw@example.com/"),
    ],
)
def test_canonicalize(url: str, canonical: str) -> None:
    assert canonicalize(url) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "mailto:a@b.c",
        "javascript:alert(1)",
        "http://[::1",
        "http://example.com:99999/",
        "http:///path-only",
        "http://exa mple.com/",
        "http://example.com/a\r\nHost: evil",
        "/relative/path",
        "",
    ],
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(url)


_segment = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#% \t\r\n\x00"))


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(com|org|de)", fullmatch=True),
    path=st.lists(_segment, max_size=4),
    params=st.lists(st.tuples(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(0, 99))),
)
def test_canonicalize_is_idempotent_and_order_insensitive(
    host: str, path: list[str], params: list[tuple[str, int]]
) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    url = f"http://{host.upper()}/{'/'.join(path)}" + (f"?{query}" if query else "")
    once = canonicalize(url)
    assert canonicalize(once) == once
    shuffled = "&".join(f"{k}={v}" for k, v in reversed(params))
    other = f"http://{host}:80/{'/'.join(path)}" + (f"?{shuffled}" if shuffled else "") + "#x"
    assert canonicalize(other) == once


def test_fingerprint_covers_method_url_and_body() -> None:
    url = "http://example.com/"
    base = fingerprint("GET", url)
    assert len(base) == 16
    assert fingerprint("GET", url) == base
    assert fingerprint("POST", url) != base
    assert fingerprint("GET", url + "x") != base
    assert fingerprint("POST", url, b"a=1") != fingerprint("POST", url, b"a=2")


# The differential test: crawlmesh resolves links as the WHATWG reference
# (ada, Node.js's URL parser) does. The pieces are rich in what browsers and
# naive joins disagree on; hypothesis runs derandomized (a fixed seed), so
# the suite runs the same cases every time.
_HREF_PARTS = [
    *("/", "a", "b.html", "..", ".", "../", "../../", "./", "//", "///"),
    *("?", "?q=1", "&r=2", "#", "#f", ";p", "=", "@", ":", "~", "%7E", "%7e"),
    *("%2e", "%2E", ".%2e/", "%2e%2E", "%2F", "%41", "%zz", "%", "\\", "..\\", "\\\\"),
    *(" ", "x y", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", '"', "<", ">", "^", "`"),
    *("{", "}", "|", "'", "[", "]", "caf\u00e9", "\u043f\u0440\u0438", "\u00a0", "\U0001f600"),
    *("http:", "https:", "HTTP:", "http://", "https://", "http:x", "https:/x", "http:\\\\"),
    *("//o.test", "//O.Test:80", "//o.test:8080/", "//[::1]", "//127.0.0.1", "//0x7f.1"),
    *("//b\u00fccher.de", "//xn--bcher-kva.de", "//u:p@o.test", "mailto:", "javascript:"),
    *("data:,", "ftp://o.test/", "http://o.test", "https://o.test:443/", "http://o.test:8080"),
]
_href = st.lists(st.sampled_from(_HREF_PARTS), max_size=7).map("".join)
_BASES = [
    "http://ex.test/a/b.html",
    "https://ex.test:8443/dir/",
    "http://ex.test",
    "http://u@ex.test/x?y",
    "http://u:p@ex.test/x/y#z",
    "http://ex.test/a/b/c/d.html?q=1#f",
    "http://ex.test/a/b/c/",
    "http://ex.test/a//b/./c/../d",
    "http://EX.test:80/%7E/x%2e/.hidden/",
    "https://127.0.0.1:443/s05/item-0001.html",
    "http://[::1]:8080/p?",
    "http://b\u00fccher.de/caf\u00e9/",
    "http://ex.test/a b/c",
]


def _ada(base: str, href: str) -> str | None:
    try:
        return join_url(base, href)
    except ValueError:
        return None


def _ours(base: str, href: str) -> str | None:
    try:
        return LinkJoiner(base).join(href)
    except ValueError:
        return None


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(base=st.sampled_from(_BASES), href=_href)
def test_link_joiner_matches_whatwg(base: str, href: str) -> None:
    assert _ours(base, href) == _ada(base, href)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(base=st.sampled_from(_BASES), href=_href)
def test_response_urljoin_matches_whatwg(base: str, href: str) -> None:
    """follow() and urljoin(): WHATWG's result, or the link as it is when
    it does not parse (the engine then reports it as ``invalid_url``)."""
    page = Response(base, 200, Headers(), b"<html><a href='x'>x</a></html>", Request(base))
    expected = _ada(base, href)
    assert page.urljoin(href) == (
        href.strip("".join(map(chr, range(33)))) if expected is None else expected
    )
    assert page.follow(href).url == page.urljoin(href)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(base=st.sampled_from(_BASES), href=_href)
def test_normalize_is_whatwg_without_fragment(base: str, href: str) -> None:
    """What a request fetches (and its response reports) for a URL: WHATWG's
    serialisation, fragment dropped; and that form is a fixed point."""
    url = _ada(base, href)
    if url is None:
        return
    expected = URL(url).href.partition("#")[0]
    assert normalize(url) == expected
    assert normalize(expected) == expected
    # An unparsed spelling of the same URL (raw spaces, backslashes, ...).
    raw = base.partition("://")[0] + "://ex.test/" + href.lstrip("/\\")
    reference = _ada(raw, "")
    if reference is not None:
        assert normalize(raw) == reference.partition("#")[0]


def test_whatwg_cases_the_issue_names() -> None:
    page = "http://ex.test/dir/page.html"
    join = LinkJoiner(page).join
    assert join("a b.html") == "http://ex.test/dir/a%20b.html"
    assert join("a\tb\nc\r.html") == "http://ex.test/dir/abc.html"
    assert join("..\\img\\a.png") == "http://ex.test/img/a.png"
    assert join("%2e%2E/x") == "http://ex.test/x"
    assert join("/a//b") == "http://ex.test/a//b"
    assert join("http://ex.test/a/../b") == "http://ex.test/b"
    assert join("///x") == "http://x/"
    assert join("http:x") == "http://ex.test/dir/x"
    assert join("https:/x") == "https://x/"
    assert join("x?") == "http://ex.test/dir/x?"
    assert join('a"<>^`{}') == "http://ex.test/dir/a%22%3C%3E%5E%60%7B%7D"


def test_queries_are_encoded_in_the_page_charset() -> None:
    """Browsers (and Scrapy) encode a link's query in the page's charset and
    its path in UTF-8; a character the charset lacks is sent as ``&#N;``."""
    join = LinkJoiner("http://ex.test/", "cp1251").join
    assert join("/\u043f?q=\u043f\u0440\u0438\u0432\u0435\u0442#\u043f") == (
        "http://ex.test/%D0%BF?q=%EF%F0%E8%E2%E5%F2#%D0%BF"
    )
    assert join("?q=\u20ac\u4e2d") == "http://ex.test/?q=%88%26%2320013%3B"
    assert join("#?q=\u043f") == "http://ex.test/#?q=%D0%BF"  # a fragment: UTF-8
    assert LinkJoiner("http://ex.test/", "utf-16-le").join("?q=\u043f") == (
        "http://ex.test/?q=%D0%BF"
    )
    # Other schemes than http(s) are left to WHATWG's UTF-8.
    assert encode_query("mailto:a@b?subject=\u043f", "cp1251") == "mailto:a@b?subject=\u043f"


def test_response_follow_encodes_the_query_in_the_page_charset() -> None:
    body = "<html><a href='/s?q=\u043f\u0440\u0438\u0432\u0435\u0442'>x</a></html>".encode("cp1251")
    headers = Headers([("Content-Type", "text/html; charset=windows-1251")])
    page = Response("http://ex.test/", 200, headers, body, Request("http://ex.test/"))
    href = page.css("a::attr(href)").get()
    assert page.follow(href).url == "http://ex.test/s?q=%EF%F0%E8%E2%E5%F2"


@pytest.mark.parametrize(
    ("base_tag", "expected"),
    [
        ("<base href='http://[::1'>", "http://ex.test/d/x.html"),
        ("<base href='javascript:void(0)'>", "http://ex.test/d/x.html"),
        ("<base href='data:text/html,hi'>", "http://ex.test/d/x.html"),
        ("<base target='_top'><base href='/other/'>", "http://ex.test/other/x.html"),
        ("<base href='//cdn.test/a b/'>", "http://cdn.test/a%20b/x.html"),
        ('<base href="/q?a=1&amp;b=2">', "http://ex.test/x.html"),
    ],
)
def test_a_bad_base_href_falls_back_to_the_page_url(base_tag: str, expected: str) -> None:
    url = "http://ex.test/d/page.html"
    body = f"<html><head>{base_tag}</head><body><a href='x.html'>x</a></body></html>".encode()
    page = Response(url, 200, Headers(), body, Request(url))
    assert page.follow("x.html").url == expected
    assert [r.url for r in page.follow_all(css="a")] == [expected]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://ex.test/%7Euser/", "http://ex.test/~user/"),
        ("http://ex.test/%41%62c", "http://ex.test/Abc"),
        ("http://ex.test/caf%c3%a9", "http://ex.test/caf%C3%A9"),
        ("http://ex.test/s?q=%7e&a=%2d", "http://ex.test/s?a=-&q=~"),
        ("http://ex.test/a%2Db#x", "http://ex.test/a-b"),
    ],
)
def test_unreserved_escapes_are_one_url(a: str, b: str) -> None:
    assert canonicalize(a) == canonicalize(b)


def test_reserved_escapes_stay_distinct() -> None:
    assert canonicalize("http://ex.test/a%2Fb") != canonicalize("http://ex.test/a/b")
    assert canonicalize("http://ex.test/s?q=a%26b") != canonicalize("http://ex.test/s?q=a&b")


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(base=st.sampled_from(_BASES), href=_href)
def test_a_followed_link_is_fetched_at_whatwg_url(base: str, href: str) -> None:
    """The whole path a link takes (follow, then admission): the URL queued
    is WHATWG's without the fragment; a link admission refuses is one of the
    documented cases (README, "URL handling")."""
    page = Response(base, 200, Headers(), b"<html></html>", Request(base))
    request = page.follow(href)
    invalid: list[InvalidURL] = []
    filtered: Counter[str] = Counter()
    admission = Admission(
        FingerprintSet(), filtered=filtered, on_invalid=lambda r, e, p: invalid.append(e)
    )
    admitted = admission.admit(request, None) is not None
    expected = _ada(base, href)
    if admitted:
        assert expected is not None
        assert request.url == expected.partition("#")[0]
    elif expected is None:
        # Unparseable: an invalid_url with the link named (or, for mailto:
        # and the like, filtered as ever).
        assert invalid or filtered["unsupported_scheme"] == 1
    elif not expected.startswith(("http:", "https:")):
        assert filtered["unsupported_scheme"] == 1 or invalid
    else:
        # WHATWG accepts it, the HTTP client would not: an IDNA-invalid host
        # (WHATWG's UTS #46 is laxer than httpx's IDNA 2008), or port 0.
        [error] = invalid
        assert "host" in str(error) or "port 0" in str(error), (expected, error)
