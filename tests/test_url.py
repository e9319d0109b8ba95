from __future__ import annotations

from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlmesh import InvalidURL
from crawlmesh._url import LinkJoiner, canonicalize, fingerprint


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


_HREF_PARTS = ["/", "a", "..", ".", "../", "../../", "./", "?q=1", "#f", "?", "#", ";p", "//"]
_href_part = st.sampled_from([*_HREF_PARTS, "http://o.test", "\\", "%2F", ":", "x y", "@"])


@settings(max_examples=1000)
@given(
    base=st.sampled_from(
        [
            "http://ex.test/a/b.html",
            "https://ex.test:8443/dir/",
            "http://ex.test",
            "http://u@ex.test/x?y",
            "http://ex.test/a/b/c/d.html",
            "http://ex.test/a/b/c/",
        ]
    ),
    href=st.lists(_href_part, max_size=6).map("".join),
)
def test_fast_join_matches_urljoin(base: str, href: str) -> None:
    assert LinkJoiner(base).join(href) == urljoin(base, href)
