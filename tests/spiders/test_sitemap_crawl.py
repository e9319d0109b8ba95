"""SitemapSpider over whole crawls of sitemaps served on loopback."""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawling import run_spider
from crawlmesh import SitemapEntry, SiteResponse, UsageError, open_site_server

from .sitemap_site import GZIP, HTML, TEXT, Files, Pages, index, url_entry, urls, urlset

QUIET = {"robots.obey": False, "progress_interval": 0}
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def warnings_about(entries: list[dict[str, Any]], words: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["log_level"] == "warning" and words in e["event"]]


async def test_robots_txt_to_an_index_to_a_gzip_urlset_to_pages(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/robots.txt",
            f"User-agent: *\nDisallow: /private/\nSitemap: {base}/index.xml\n"
            "Sitemap: /relative.xml\n".encode(),
            TEXT,
        )
        site.add("/index.xml", index(f"{base}/products.xml.gz", f"{base}/pages.xml"))
        site.add_gzip(
            "/products.xml.gz",
            urlset(f"{base}/product/1", f"{base}/product/2", f"{base}/private/3"),
        )
        site.add("/pages.xml", urlset(f"{base}/page/a"))
        site.add("/relative.xml", urlset(f"{base}/page/b"))

        class Spider(Pages):
            sitemap_urls = (f"{base}/robots.txt",)

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, progress_interval=0)  # robots.txt obeyed
    assert urls(crawl.items) == {
        f"{base}/product/1",
        f"{base}/product/2",
        f"{base}/page/a",
        f"{base}/page/b",
    }
    assert crawl.errors == []
    assert crawl.stats.filtered == {"robots": 1}  # /private/3
    assert spider.sitemap_counts["sitemaps"] == 4  # the index and three urlsets
    assert spider.sitemap_counts["entries"] == 2 + 5


async def test_a_gzip_sitemap_is_known_by_its_magic_bytes_whatever_its_type(
    tmp_path: Path,
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        packed = gzip.compress(urlset(f"{base}/page/1"))
        site.files["/a.xml"] = SiteResponse(200, packed, HTML)  # mislabelled
        # A gzip file sent with Content-Encoding: gzip as well (two layers).
        twice = gzip.compress(gzip.compress(urlset(f"{base}/page/2")))
        site.files["/b.xml.gz"] = SiteResponse(200, twice, [*GZIP, ("Content-Encoding", "gzip")])

        class Spider(Pages):
            sitemap_urls = (f"{base}/a.xml", f"{base}/b.xml.gz")

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/1", f"{base}/page/2"}


class Routed(Pages):
    sitemap_rules = (
        (r"/product/", "parse_product"),
        (r"/page/keep", lambda response: {"url": response.url, "callback": "lambda"}),
    )

    def parse_product(self, response: Any) -> Any:
        yield {"url": response.url, "callback": "parse_product"}


async def test_rules_route_pages_first_match_wins_and_unmatched_are_not_fetched(
    tmp_path: Path,
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/sitemap.xml",
            urlset(f"{base}/product/page/keep", f"{base}/page/keep", f"{base}/page/other"),
        )
        spider = Routed(sitemap_urls=[f"{base}/sitemap.xml"])
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert {(i["url"], i["callback"]) for i in crawl.items} == {
        (f"{base}/product/page/keep", "parse_product"),  # the first rule, though both match
        (f"{base}/page/keep", "lambda"),
    }
    assert "/page/other" not in site.hits
    assert spider.sitemap_counts["no_rule"] == 1


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"sitemap_rules": [("", "parse_nothing")]}, "no method named 'parse_nothing'"),
        ({"sitemap_rules": [("", 42)]}, "a method name or a callable, not int"),
        ({"sitemap_rules": [("(", "parse")]}, r"Pages.sitemap_rules: '\(': missing \)"),
        ({"sitemap_follow": ["[a-"]}, r"Pages.sitemap_follow: '\[a-': unterminated"),
    ],
)
def test_a_bad_rule_is_a_usage_error(attributes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Pages(**attributes)


def test_sitemap_urls_from_a_spider_argument() -> None:
    spider = Pages(sitemap_urls="http://a.example/robots.txt  http://b.example/s.xml")
    assert spider.sitemap_urls == ["http://a.example/robots.txt", "http://b.example/s.xml"]


async def test_sitemap_follow_picks_the_index_entries_fetched(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/index.xml", index(f"{base}/sitemap-products.xml", f"{base}/sitemap-blog.xml"))
        site.add("/sitemap-products.xml", urlset(f"{base}/product/1"))
        site.add("/sitemap-blog.xml", urlset(f"{base}/page/blog"))

        class Spider(Pages):
            sitemap_urls = (f"{base}/index.xml",)
            sitemap_follow = (r"-products\.",)

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/product/1"}
    assert "/sitemap-blog.xml" not in site.hits
    assert spider.sitemap_counts["not_followed"] == 1


@pytest.mark.parametrize("alternates", [False, True])
async def test_alternate_links_are_fetched_only_when_asked(
    tmp_path: Path, alternates: bool
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        entry = url_entry(
            f"{base}/page/en", alternates=[f"{base}/page/de", f"{base}/page/fr", f"{base}/page/en"]
        )
        site.add("/sitemap.xml", urlset(entry))

        class Spider(Pages):
            sitemap_urls = (f"{base}/sitemap.xml",)
            sitemap_alternate_links = alternates

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    expected = {f"{base}/page/en"}
    if alternates:
        expected |= {f"{base}/page/de", f"{base}/page/fr"}
    assert urls(crawl.items) == expected
    assert crawl.stats.filtered.get("duplicate", 0) == 0  # (the page itself is not asked twice)


async def test_lastmod_after_and_sitemap_filter_choose_the_entries(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/sitemap.xml",
            urlset(
                url_entry(f"{base}/page/old", lastmod="2023-12-31"),
                url_entry(f"{base}/page/new", lastmod="2024-02-01T10:00:00+01:00", priority="0.9"),
                url_entry(f"{base}/page/new-low", lastmod="2024-03", priority="0.1"),
                url_entry(f"{base}/page/undated"),
                url_entry(f"{base}/page/bad-date", lastmod="yesterday"),
            ),
        )
        seen: list[SitemapEntry] = []

        class Spider(Pages):
            sitemap_urls = (f"{base}/sitemap.xml",)
            lastmod_after = datetime(2024, 1, 1)  # naive: UTC

            def sitemap_filter(self, entries: Any) -> Any:
                for entry in entries:
                    seen.append(entry)
                    if entry.priority is None or entry.priority >= 0.5:
                        yield entry

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert urls(crawl.items) == {
        f"{base}/page/new",
        f"{base}/page/undated",
        f"{base}/page/bad-date",
    }
    # The hook sees what lastmod_after kept, with typed fields.
    assert [e.loc.rpartition("/")[2] for e in seen] == ["new", "new-low", "undated", "bad-date"]
    assert seen[0].lastmod == datetime.fromisoformat("2024-02-01T10:00:00+01:00")
    assert seen[0].lastmod.utcoffset() == timedelta(hours=1)  # type: ignore[union-attr]
    assert spider.sitemap_counts["old"] == 1


def test_lastmod_after_from_a_spider_argument() -> None:
    assert Pages(lastmod_after="2024-01-31")._after == datetime.fromisoformat("2024-01-31T00:00Z")
    with pytest.raises(UsageError, match="not a W3C datetime"):
        Pages(lastmod_after="last week")


async def test_a_gzip_bomb_is_cut_off_like_a_page(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        # Real entries first, then 64 MiB of blanks: ~64 KiB compressed.
        xml = urlset(f"{base}/page/1", f"{base}/page/2").replace(
            b"</urlset>", b" " * (64 << 20) + b"</urlset>"
        )
        site.add_gzip("/bomb.xml.gz", xml)
        site.add("/fine.xml", urlset(f"{base}/page/3"))

        class Spider(Pages):
            sitemap_urls = (f"{base}/bomb.xml.gz", f"{base}/fine.xml")

        crawl = await run_spider(Spider(), tmp_path, max_response_size=1 << 20, **QUIET)
    assert len(site.files["/bomb.xml.gz"].body) < 1 << 20
    assert urls(crawl.items) == {f"{base}/page/3"}  # nothing from the bomb
    [error] = crawl.errors
    assert error["url"] == f"{base}/bomb.xml.gz"
    assert error["kind"] == "too_large"
    assert "max_response_size (1048576 bytes)" in error["reason"]
    assert "/page/1" not in site.hits


async def test_broken_xml_keeps_the_entries_before_the_break(
    tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        whole = urlset(f"{base}/page/1", f"{base}/page/2", f"{base}/page/3")
        site.add(
            "/broken.xml",
            whole[: whole.index(b"<url><loc>" + f"{base}/page/3".encode())]
            + b"<url><loc <<< &&& </urlset",
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/broken.xml",)

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/1", f"{base}/page/2"}
    [warning] = warnings_about(warnings_logged, "broken sitemap XML")
    assert warning["sitemap"] == f"{base}/broken.xml"
    assert warning["kept"] == 2


async def test_an_external_entity_reads_no_file_and_no_url(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/xxe.xml",
            f"""<?xml version="1.0"?>
<!DOCTYPE urlset [
  <!ENTITY file SYSTEM "file://{secret}">
  <!ENTITY remote SYSTEM "{base}/dtd-was-fetched">
  <!ENTITY % param SYSTEM "{base}/param-was-fetched"> %param;
]>
<urlset><url><loc>{base}/page/x&file;</loc></url>
<url><loc>{base}/page/y&remote;</loc></url></urlset>""".encode(),
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/xxe.xml",)

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/x", f"{base}/page/y"}
    assert not [hit for hit in site.hits if "TOPSECRET" in hit or "was-fetched" in hit]


async def test_a_billion_laughs_expands_to_nothing(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/laughs.xml",
            f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY lol0 "lol">{lol}]>'
            f"<urlset><url><loc>{base}/page/a&lol9;</loc></url></urlset>".encode(),
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/laughs.xml",)

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/a"}


async def test_an_index_listing_itself_or_its_parent_is_read_once(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/a.xml", index(f"{base}/a.xml", f"{base}/b.xml"))
        site.add("/b.xml", index(f"{base}/a.xml", f"{base}/c.xml"))
        site.add("/c.xml", urlset(f"{base}/page/1"))

        class Spider(Pages):
            sitemap_urls = (f"{base}/a.xml",)

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/1"}
    assert [hit for hit in site.hits if hit.endswith(".xml")] == ["/a.xml", "/b.xml", "/c.xml"]
    assert crawl.stats.filtered["duplicate"] == 2  # a.xml listed by itself and by b.xml


async def test_indexes_nest_only_so_deep(
    tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        for n in range(4):
            site.add(f"/i{n}.xml", index(f"{base}/i{n + 1}.xml"))
        site.add("/i4.xml", urlset(f"{base}/page/deep"))
        site.add("/j1.xml", urlset(f"{base}/page/shallow"))
        site.files["/i0.xml"] = SiteResponse(
            200, index(f"{base}/i1.xml", f"{base}/j1.xml"), site.files["/i0.xml"].headers
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/i0.xml",)

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/shallow"}
    assert "/i4.xml" not in site.hits  # i3 is an index at depth 3: not followed
    [warning] = warnings_about(warnings_logged, "too_deep")
    assert warning["sitemap"] == f"{base}/i3.xml"


@pytest.mark.parametrize(
    ("allowed", "fetched", "offsite"),
    [
        ((), {"home"}, 0),  # the sitemap's host only
        (("127.0.0.1", "127.0.0.2"), {"home", "away"}, 0),
        (("127.0.0.1",), {"home"}, 1),  # admission filters it, counted
    ],
)
async def test_entries_on_another_host_need_allowed_domains(
    tmp_path: Path, allowed: tuple[str, ...], fetched: set[str], offsite: int
) -> None:
    home, away = Files(), Files()
    async with (
        open_site_server(home.handle) as base,
        open_site_server(away.handle, host="127.0.0.2") as other,
    ):
        home.add("/sitemap.xml", urlset(f"{base}/page/home", f"{other}/page/away"))

        class Spider(Pages):
            sitemap_urls = (f"{base}/sitemap.xml",)
            allowed_domains = allowed

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    names = {"home": f"{base}/page/home", "away": f"{other}/page/away"}
    assert urls(crawl.items) == {names[n] for n in fetched}
    assert crawl.stats.filtered.get("offsite", 0) == offsite
    assert spider.sitemap_counts["off_host"] == (0 if allowed else 1)


async def test_robots_txt_vouches_for_a_sitemap_on_another_host(tmp_path: Path) -> None:
    home, away = Files(), Files()
    async with (
        open_site_server(home.handle) as base,
        open_site_server(away.handle, host="127.0.0.2") as other,
    ):
        home.add("/robots.txt", f"Sitemap: {other}/for-home.xml\n".encode(), TEXT)
        # Cross-submission: the sitemap lives on the other host, its pages here.
        away.add(
            "/for-home.xml", urlset(f"{base}/page/1", f"{other}/page/2", "http://127.0.0.3:1/x")
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/robots.txt",)

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/1", f"{other}/page/2"}
    assert spider.sitemap_counts["off_host"] == 1


async def test_a_plain_text_sitemap(tmp_path: Path) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add(
            "/sitemap.txt",
            f"\ufeff{base}/page/1\r\n\n  {base}/page/2  \nnot a url\n{base}/page/3".encode(),
            TEXT,
        )

        class Spider(Pages):
            sitemap_urls = (f"{base}/sitemap.txt",)

        crawl = await run_spider(Spider(), tmp_path, **QUIET)
    assert urls(crawl.items) == {f"{base}/page/1", f"{base}/page/2", f"{base}/page/3"}


@pytest.mark.parametrize(
    "body",
    [
        b"<!doctype html><html><body><a href='/page/1'>x</a></body></html>",
        b"<html><body><a href='/page/1'>x</a><br></body></html>",
        b"<rss><channel><item><link>/page/1</link></item></channel></rss>",
        b"just some words\nand more words\n",
    ],
)
async def test_a_body_that_is_no_sitemap_warns_once_and_schedules_nothing(
    tmp_path: Path, warnings_logged: list[dict[str, Any]], body: bytes
) -> None:
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/sitemap.xml", body, HTML)

        class Spider(Pages):
            sitemap_urls = (f"{base}/sitemap.xml",)

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert crawl.items == []
    assert site.hits == ["/sitemap.xml"]
    [warning] = warnings_about(warnings_logged, "not a sitemap")
    assert warning["sitemap"] == f"{base}/sitemap.xml"
    assert spider.sitemap_counts["not_sitemap"] == 1


async def test_the_protocol_limits_are_enforced_with_a_warning(
    tmp_path: Path, warnings_logged: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawlmesh._spiders import _sitemap_parse

    # (Limits of 50,000 entries and 50 MB, scaled down to keep the test quick.)
    monkeypatch.setattr(_sitemap_parse, "MAX_ENTRIES", 3)
    monkeypatch.setattr(_sitemap_parse, "MAX_FILE_BYTES", 600)
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/many.xml", urlset(*(f"{base}/page/{n}" for n in range(5))))
        text = "".join(f"{base}/page/t{n:03d}\n" for n in range(40)).encode()
        site.add("/long.txt", text, TEXT)

        class Spider(Pages):
            sitemap_urls = (f"{base}/many.xml", f"{base}/long.txt")

        spider = Spider()
        crawl = await run_spider(spider, tmp_path, **QUIET)
    assert len(text) > 600 > len(site.files["/many.xml"].body)
    assert {u.rpartition("/")[2] for u in urls(crawl.items)} == {
        "0", "1", "2", "t000", "t001", "t002",
    }  # fmt: skip
    read = len(text[: text.rfind(b"\n", 0, 600) + 1].splitlines())  # lines before the cut
    dropped = {w["sitemap"]: w["count"] for w in warnings_about(warnings_logged, "over_limit")}
    assert dropped == {f"{base}/many.xml": 2, f"{base}/long.txt": read - 3}
    [cut] = warnings_about(warnings_logged, "size limit")
    assert cut["sitemap"] == f"{base}/long.txt"
    assert spider.sitemap_counts["over_limit"] == 2 + (read - 3) + 1


async def test_the_readme_example_runs(tmp_path: Path) -> None:
    section = README[README.index("## Sitemaps") :]
    [code] = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ", 1)], re.S)
    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/robots.txt", f"Sitemap: {base}/sitemap-index.xml\n".encode(), TEXT)
        site.add(
            "/sitemap-index.xml",
            index(f"{base}/sitemap-products.xml", f"{base}/sitemap-blog.xml", f"{base}/other.xml"),
        )
        site.add(
            "/sitemap-products.xml",
            urlset(
                url_entry(
                    f"{base}/product/1", lastmod="2024-05-01", alternates=[f"{base}/product/1-de"]
                ),
                url_entry(f"{base}/product/2", lastmod="2023-05-01"),  # not changed since
                url_entry(f"{base}/product/3", priority="0.1"),  # filtered by the hook
            ),
        )
        site.add("/sitemap-blog.xml", urlset(f"{base}/blog/1", f"{base}/about"))
        site.add("/blog/1", b"<title>Post 1</title>", HTML)
        code = code.replace("https://shop.example", base).replace('"shop.example"', '"127.0.0.1"')
        scope: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), scope)
        crawl = await run_spider(scope["Shop"](), tmp_path, **QUIET)
    assert sorted(crawl.items, key=lambda i: i["url"]) == [
        {"url": f"{base}/blog/1", "title": "Post 1"},
        {"url": f"{base}/product/1", "name": None},
        {"url": f"{base}/product/1-de", "name": None},
    ]
    assert "/other.xml" not in site.hits
    assert "/about" not in site.hits


async def test_the_genspider_sitemap_template_crawls(tmp_path: Path) -> None:
    from crawlmesh._cli._genspider import render, target_of

    site = Files()
    async with open_site_server(site.handle) as base:
        site.add("/robots.txt", f"Sitemap: {base}/sitemap.xml\n".encode(), TEXT)
        site.add("/sitemap.xml", urlset(f"{base}/page/1", f"{base}/page/2"))
        scope: dict[str, Any] = {}
        exec(compile(render("sitemap", "shop", target_of(base)), "shop.py", "exec"), scope)
        crawl = await run_spider(scope["ShopSpider"](), tmp_path, **QUIET)
    assert sorted(crawl.items, key=lambda i: i["url"]) == [
        {"url": f"{base}/page/1", "title": "/page/1"},
        {"url": f"{base}/page/2", "title": "/page/2"},
    ]
