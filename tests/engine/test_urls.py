"""A crawl fetches the URLs a browser would (issue 14, items 1-9).

A loopback site records every request target as it arrives on the wire;
each test crawls it and checks what was fetched, how often, and the URLs
that items and the errors file report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from crawling import Pages, run_engine, run_spider
from crawlmesh import (
    Response,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._state import JobDir
from crawlmesh._util._url import canonicalize, fingerprint

HTML = [("Content-Type", "text/html; charset=utf-8")]


def _page(title: str, hrefs: list[str] = (), head: str = "") -> bytes:  # type: ignore[assignment]
    links = "".join(f'<a href="{h}">x</a>' for h in hrefs)
    return f"<html><head>{head}</head><body><h1>{title}</h1>{links}</body></html>".encode()


class UrlSite:
    """Pages by exact request target (as sent: escapes and all); anything
    else is a 404. ``hits`` counts the targets."""

    def __init__(self, pages: dict[str, SiteResponse]) -> None:
        self.pages = pages
        self.hits: Counter[str] = Counter()

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.hits[request.target] += 1
        if request.target == "/robots.txt":
            return SiteResponse(404)
        return self.pages.get(request.target) or SiteResponse(404, b"not found", HTML)


def ok(title: str, hrefs: list[str] = (), head: str = "") -> SiteResponse:  # type: ignore[assignment]
    return SiteResponse(200, _page(title, hrefs, head), HTML)


def moved(location: str, status: int = 301) -> SiteResponse:
    return SiteResponse(status, b"", [("Location", location)])


def titled(response: Response) -> dict[str, Any]:
    """A page's item: its URL and its ``<h1>`` (``None`` if it has none)."""
    return {"url": response.url, "title": response.css("h1::text").get()}


def follow(urls: list[str], *, dont_filter: bool = False) -> Pages:
    """Every page reachable from ``urls``, one :func:`titled` item each."""
    return Pages(urls, follow=True, item=titled, dont_filter=dont_filter)


NO_ROBOTS: dict[str, Any] = {"robots.obey": False}
"""The crawls' settings: a robots.txt fetch would be one more hit to count."""


@pytest.fixture
async def served() -> AsyncIterator[tuple[UrlSite, str]]:
    site = UrlSite({})
    async with open_site_server(site.handle) as base:
        yield site, base


async def test_links_are_fetched_as_a_browser_resolves_them(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    site, base = served
    site.pages.update(
        {
            "/dir/page.html": ok(
                "start",
                [
                    "a b.html",  # item 1: a space is encoded
                    "q&quot;&lt;&gt;^`{}.html",  # ... as are the others WHATWG encodes
                    "ta\tb\nc\r.html",  # item 2: tab, CR, LF stripped
                    "..\\img\\a.png",  # item 3: backslashes are slashes
                    "%2e%2E/up.html",  # item 4: %2e dot segments
                    f"{base}/dir/../abs.html",  # dot segments in absolute links
                    "/x//y.html",  # empty segments kept
                    "e.html?",  # an empty query kept
                ],
            ),
            "/dir/a%20b.html": ok("space"),
            "/dir/q%22%3C%3E%5E%60%7B%7D.html": ok("encoded"),
            "/dir/tabc.html": ok("stripped"),
            "/img/a.png": ok("backslash"),
            "/up.html": ok("dot-dot"),
            "/abs.html": ok("absolute"),
            "/x//y.html": ok("empty segment"),
            "/dir/e.html?": ok("empty query"),
        }
    )
    stats, items, errors = await run_spider(
        follow([base + "/dir/page.html"]), tmp_path, **NO_ROBOTS
    )

    assert errors == []
    assert {i["title"] for i in items} == {
        "start",
        "space",
        "encoded",
        "stripped",
        "backslash",
        "dot-dot",
        "absolute",
        "empty segment",
        "empty query",
    }
    assert set(site.hits) == set(site.pages)
    assert all(n == 1 for n in site.hits.values())
    assert stats.finish_reason == "finished"


async def test_a_location_with_a_space_is_followed_encoded(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    site, base = served
    site.pages.update(
        {
            "/go": moved("/target page.html?q=a b"),
            "/back": moved("..\\dir\\x.html", 302),
            "/target%20page.html?q=a%20b": ok("target"),
            "/dir/x.html": ok("backslash"),
        }
    )
    _, items, errors = await run_spider(
        follow([base + "/go", base + "/back"]), tmp_path, **NO_ROBOTS
    )
    assert errors == []
    assert sorted(i["url"] for i in items) == [
        base + "/dir/x.html",
        base + "/target%20page.html?q=a%20b",
    ]


async def test_a_bad_base_href_loses_no_link(served: tuple[UrlSite, str], tmp_path: Path) -> None:
    site, base = served
    site.pages.update(
        {
            "/d/bad-base.html": ok("bad", ["one.html"], head="<base href='http://[::1'>"),
            "/d/js-base.html": ok("js", ["two.html"], head="<base href='javascript:void(0)'>"),
            "/d/one.html": ok("one"),
            "/d/two.html": ok("two"),
        }
    )
    starts = [base + "/d/bad-base.html", base + "/d/js-base.html"]
    _, items, errors = await run_spider(follow(starts), tmp_path, **NO_ROBOTS)
    assert errors == []
    assert {i["title"] for i in items} == {"bad", "js", "one", "two"}


async def test_unreserved_escapes_fetch_one_page(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    site, base = served
    site.pages.update(
        {
            "/": ok("index", ["/~user/", "/%7Euser/", "/%7euser/", "/a%2Db", "/a-b"]),
            "/~user/": ok("home"),
            "/%7Euser/": ok("home"),
            "/%7euser/": ok("home"),
            "/a%2Db": ok("dash"),
            "/a-b": ok("dash"),
        }
    )
    _, items, _ = await run_spider(follow([base + "/"]), tmp_path, **NO_ROBOTS)
    assert sorted(i["title"] for i in items) == ["dash", "home", "index"]
    assert sum(site.hits[p] for p in ("/~user/", "/%7Euser/", "/%7euser/")) == 1
    assert site.hits["/a%2Db"] + site.hits["/a-b"] == 1


async def test_fragments_never_reach_response_url(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    """Whichever link reaches a page first, its item's URL is the same."""
    site, base = served
    site.pages.update(
        {
            "/": ok("index", ["/doc.html#intro", "/doc.html#usage", "/gone.html#x"]),
            "/doc.html": ok("doc", ["#top", "doc.html#end"]),
        }
    )
    _, items, errors = await run_spider(follow([base + "/#start"]), tmp_path, **NO_ROBOTS)
    assert sorted(i["url"] for i in items) == [base + "/", base + "/doc.html"]
    assert [e["url"] for e in errors] == [base + "/gone.html"]
    assert site.hits["/doc.html"] == 1


async def test_a_link_to_a_redirect_target_is_a_duplicate(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    """``dir`` -> 301 -> ``dir/`` and ``old.html`` -> 301 -> ``a.html``;
    then (``/next`` is found only on the targets) links to the targets."""
    site, base = served
    site.pages.update(
        {
            "/": ok("index", ["/dir", "/old.html"]),
            "/dir": moved("/dir/"),
            "/old.html": moved("a.html"),
            "/dir/": ok("dir", ["/next"]),
            "/a.html": ok("a", ["/next"]),
            "/next": ok("next", ["/dir/", "/a.html", "a.html#x"]),
        }
    )
    stats, items, errors = await run_spider(follow([base + "/"]), tmp_path, **NO_ROBOTS)
    assert errors == []
    assert Counter(i["title"] for i in items) == Counter(["index", "dir", "a", "next"])
    assert site.hits["/dir/"] == site.hits["/a.html"] == 1
    assert stats.filtered["duplicate"] >= 3


async def test_a_redirect_to_a_page_already_queued_is_a_duplicate(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    """The links to the targets come first: the redirects then reach pages
    that are queued (or fetched) already, and deliver no second item."""
    site, base = served
    site.pages.update(
        {
            "/": ok("index", ["/dir/", "/a.html", "/dir", "/old.html"]),
            "/dir": moved("/dir/"),
            "/old.html": moved("a.html"),
            "/dir/": ok("dir"),
            "/a.html": ok("a"),
        }
    )
    _, items, errors = await run_spider(follow([base + "/"]), tmp_path, **NO_ROBOTS)
    assert errors == []
    assert Counter(i["title"] for i in items) == Counter(["index", "dir", "a"])
    assert sorted(i["url"] for i in items) == [base + "/", base + "/a.html", base + "/dir/"]


async def test_dont_filter_still_fetches_a_seen_redirect_target(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    site, base = served
    site.pages.update({"/a.html": ok("a"), "/old.html": moved("/a.html")})
    _, items, _ = await run_spider(
        follow([base + "/a.html", base + "/old.html"], dont_filter=True), tmp_path, **NO_ROBOTS
    )
    assert [i["title"] for i in items] == ["a", "a"]


async def test_a_redirect_target_is_seen_in_the_jobdir(
    served: tuple[UrlSite, str], tmp_path: Path
) -> None:
    """With --jobdir the target's fingerprint is stored: a resumed crawl
    treats a link to it as a duplicate too."""
    site, base = served
    site.pages.update(
        {
            "/": ok("index", ["/old.html"]),
            "/old.html": moved("/a.html"),
            "/a.html": ok("a", ["/a.html#x"]),
        }
    )
    spider = follow([base + "/"])
    job = JobDir(tmp_path / "job", spider)
    await run_engine(spider, tmp_path, {"progress_interval": 0, **NO_ROBOTS}, backend=job)
    assert site.hits["/a.html"] == 1
    again = JobDir(tmp_path / "job", follow([base + "/"]))
    assert not again.add(fingerprint("GET", canonicalize(base + "/a.html")))
    assert again.add(fingerprint("GET", canonicalize(base + "/b.html")))
