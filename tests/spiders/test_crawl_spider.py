"""CrawlSpider: whole crawls by rules over a small shop served on loopback,
and the warnings a ported Scrapy project needs (rules on a plain Spider, an
overridden parse(), rules that never match)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from crawling import Crawl, run_spider
from crawlmesh import (
    CrawlSpider,
    FetchError,
    Link,
    LinkExtractor,
    Request,
    Response,
    Rule,
    SiteRequest,
    SiteResponse,
    Spider,
    SpiderLoadError,
    open_site_server,
)
from crawlmesh._util._log import configure_logging

HTML = [("Content-Type", "text/html; charset=utf-8")]
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def page(*hrefs: str, items: tuple[str, ...] = (), head: str = "") -> bytes:
    nav = "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)
    listed = "".join(f'<li><a href="{h}">item</a></li>' for h in items)
    return (
        f"<html><head>{head}</head><body><nav>{nav}</nav>"
        f'<ul class="items">{listed}</ul></body></html>'
    ).encode()


SHOP = {
    "/": page(
        "/cat/1",
        "/cat/2",
        "/cat/1?page=2",
        "/private/admin",
        "http://other.invalid/offsite",
        "/about",
        "/logo.png",
        "mailto:shop@example.com",
        "javascript:void(0)",
        "/cat/1#top",
    ),
    "/cat/1": page("/", "/cat/2", "/item/9", items=("/item/1", "/item/2", "/item/1#reviews")),
    "/cat/2": page("/cat/1", "/sale", items=("/item/3", "/item/404")),
    "/item/1": page("/cat/1", "/item/4", items=("/item/5",)),
    "/item/2": page("/cat/1", items=("/item/5",)),
    "/item/3": page(items=("/item/5",)),
    "/item/4": page(),
    "/item/5": page(),
    "/item/9": page(),
    "/about": page('/cat/1" rel="nofollow'),
    "/sale": page(items=("/item/1",)),
    "/base/page": page(head='<base href="/elsewhere/">', items=("item/7",)),
    "/elsewhere/item/7": page(),
}


class Shop:
    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: SiteRequest, stream: Any) -> SiteResponse:
        self.hits.append(request.target)
        body = SHOP.get(request.target)
        if body is None:
            return SiteResponse(404, b"not found", HTML)
        return SiteResponse(200, body, HTML)


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Shop, str]]:
    site = Shop()
    async with open_site_server(site.handle) as base:
        yield site, base


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def crawl(spider: Spider, tmp_path: Path) -> Crawl:
    return await run_spider(spider, tmp_path, **{"robots.obey": False, "retry.max_attempts": 1})


class ShopSpider(CrawlSpider):
    """Categories are followed; item pages (listed in .items) get a callback."""

    name = "shop"
    rules = (
        Rule(
            LinkExtractor(allow=r"/item/\d+$", restrict_css=".items"),
            callback="parse_item",
            cb_kwargs={"kind": "item"},
        ),
        Rule(LinkExtractor(allow=r"/cat/\d+$", deny_domains="other.invalid")),
    )

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base + "/"]

    def parse_start_url(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {"start": path_of(response.url)}

    async def parse_item(self, response: Response, kind: str) -> AsyncIterator[dict[str, Any]]:
        yield {"item": path_of(response.url), "kind": kind, "rule": response.request.rule}


async def test_a_crawl_by_rules(shop: tuple[Shop, str], tmp_path: Path) -> None:
    site, base = shop
    result = await crawl(ShopSpider(base), tmp_path)
    assert {"start": "/"} in result.items
    items = sorted((i["item"], i["kind"], i["rule"]) for i in result.items if "item" in i)
    # Items listed in .items of the category pages; /item/9 (outside .items),
    # and what item pages link to (the item rule does not follow), are not.
    assert items == [("/item/1", "item", 0), ("/item/2", "item", 0), ("/item/3", "item", 0)]
    assert sorted(set(site.hits)) == sorted(
        ["/", "/cat/1", "/cat/2", "/item/1", "/item/2", "/item/3", "/item/404"]
    )
    assert len(site.hits) == len(set(site.hits))  # (fragments and repeats: once)
    assert [path_of(e["url"]) for e in result.errors] == ["/item/404"]


async def test_a_rule_with_a_callback_may_follow(shop: tuple[Shop, str], tmp_path: Path) -> None:
    base = shop[1]

    class Deeper(ShopSpider):
        rules = (
            Rule(
                LinkExtractor(allow=r"/item/\d+$"),
                callback="parse_item",
                cb_kwargs={"kind": "deep"},
                follow=True,
            ),
            Rule(LinkExtractor(allow=r"/cat/\d+$")),
        )

    result = await crawl(Deeper(base), tmp_path)
    items = {i["item"] for i in result.items if "item" in i}
    # Item pages' own links are followed now, and /item/9 is outside no region.
    assert items == {"/item/1", "/item/2", "/item/3", "/item/4", "/item/5", "/item/9"}
    assert Deeper.rules[0].follows
    assert not ShopSpider.rules[0].follows
    assert ShopSpider.rules[1].follows


async def test_the_first_rule_that_takes_a_link_owns_it(
    shop: tuple[Shop, str], tmp_path: Path
) -> None:
    site, base = shop
    seen: list[tuple[str, int | None]] = []

    class Overlap(CrawlSpider):
        start_urls = [base + "/cat/1"]
        rules = (
            Rule(LinkExtractor(allow=r"/item/1$"), callback="note"),
            Rule(LinkExtractor(allow=r"/item/"), callback="note"),
        )

        def note(self, response: Response) -> None:
            seen.append((path_of(response.url), response.request.rule))

    await crawl(Overlap(), tmp_path)
    assert sorted(seen) == [("/item/1", 0), ("/item/2", 1), ("/item/9", 1)]
    assert site.hits.count("/item/1") == 1


async def test_process_links_process_request_and_errback(
    shop: tuple[Shop, str], tmp_path: Path
) -> None:
    site, base = shop
    failed: list[str] = []

    class Hooks(CrawlSpider):
        start_urls = [base + "/cat/2"]
        rules = (
            Rule(
                LinkExtractor(restrict_css=".items"),
                callback="parse_item",
                process_links="only_missing_and_three",
                process_request="tag",
                errback="lost",
            ),
            Rule(LinkExtractor(allow="/sale"), process_request=lambda request, response: None),
        )

        def only_missing_and_three(self, links: list[Link]) -> list[Link]:
            return [link for link in links if link.url.endswith(("/item/3", "/item/404"))]

        def tag(self, request: Request, response: Response) -> Request:
            return request.replace(meta={"from": path_of(response.url)})

        def parse_item(self, response: Response) -> dict[str, Any]:
            return {"item": path_of(response.url), "meta": response.meta}

        def lost(self, error: FetchError) -> Iterator[dict[str, Any]]:
            assert error.request is not None
            failed.append(path_of(error.request.url))
            yield {"lost": path_of(error.request.url)}

    result = await crawl(Hooks(), tmp_path)
    assert {"item": "/item/3", "meta": {"from": "/cat/2"}} in result.items
    assert {"lost": "/item/404"} in result.items
    assert failed == ["/item/404"]
    assert "/sale" not in site.hits  # process_request returned None: dropped
    assert sorted(site.hits) == ["/cat/2", "/item/3", "/item/404"]


async def test_nofollow_skip_and_base_href(shop: tuple[Shop, str], tmp_path: Path) -> None:
    site, base = shop

    class Polite(CrawlSpider):
        start_urls = [base + "/about", base + "/base/page"]
        rules = (Rule(LinkExtractor(nofollow="skip", restrict_css=".items, nav"), callback="hit"),)

        def hit(self, response: Response) -> dict[str, str]:
            return {"hit": path_of(response.url)}

    result = await crawl(Polite(), tmp_path)
    # /about's only link is rel=nofollow; /base/page's relative link resolves
    # against its <base href>.
    assert result.items == [{"hit": "/elsewhere/item/7"}]
    assert "/cat/1" not in site.hits


def test_rule_names_are_checked_on_creation() -> None:
    class Typo(CrawlSpider):
        rules = (Rule(LinkExtractor(), callback="parse_iten"),)

    with pytest.raises(SpiderLoadError, match=r"Typo.rules\[0\]: the callback 'parse_iten'"):
        Typo()


def test_a_callable_of_the_class_body_is_bound() -> None:
    class Bound(CrawlSpider):
        def parse_item(self, response: Response) -> None:
            return None

        rules = (Rule(callback=parse_item),)

    spider = Bound()
    assert spider._rules[0].callback == spider.parse_item
    assert not Bound.rules[0].follows


# -- warnings ---------------------------------------------------------------


async def crawl_logged(spider: Spider, tmp_path: Path) -> list[dict[str, Any]]:
    configure_logging("info")
    with structlog.testing.capture_logs() as logs:
        await crawl(spider, tmp_path)
    return [e for e in logs if e["log_level"] == "warning"]


async def test_rules_on_a_plain_spider_are_warned_about(
    shop: tuple[Shop, str], tmp_path: Path
) -> None:
    base = shop[1]

    class NotCrawl(Spider):
        name = "plain"
        start_urls = [base + "/item/4"]
        rules = (Rule(LinkExtractor()),)

        def parse(self, response: Response) -> None:
            return None

    warnings = await crawl_logged(NotCrawl(), tmp_path)
    assert [(w["event"], w["spider"]) for w in warnings] == [
        ("rules are only applied by CrawlSpider: subclass crawlmesh.CrawlSpider", "plain")
    ]


async def test_an_overridden_parse_is_warned_about(shop: tuple[Shop, str], tmp_path: Path) -> None:
    site, base = shop

    class Overrides(CrawlSpider):
        name = "overrides"
        start_urls = [base + "/cat/1"]
        rules = (Rule(LinkExtractor(allow="/item/")),)

        def parse(self, response: Response) -> Any:
            return {"page": path_of(response.url)}

    warnings = await crawl_logged(Overrides(), tmp_path)
    assert len(warnings) == 1
    assert warnings[0]["event"].startswith("a CrawlSpider overrides parse()")
    assert warnings[0]["spider"] == "overrides"
    assert site.hits == ["/cat/1"]  # the rules did not run on the start page


async def test_rules_that_never_match_are_warned_about_once(
    shop: tuple[Shop, str], tmp_path: Path
) -> None:
    base = shop[1]

    class Misses(CrawlSpider):
        name = "misses"
        start_urls = [base + "/", base + "/cat/1", base + "/cat/2"]
        rules = (Rule(LinkExtractor(allow=r"/products/"), callback="parse_item"),)

        def parse_item(self, response: Response) -> None:
            return None

    warnings = await crawl_logged(Misses(), tmp_path)
    assert [(w["event"], w["spider"], w["pages"]) for w in warnings] == [
        ("the rules matched no link on any page", "misses", 3)
    ]


async def test_a_crawl_whose_rules_match_warns_of_nothing(
    shop: tuple[Shop, str], tmp_path: Path
) -> None:
    base = shop[1]
    warnings = await crawl_logged(ShopSpider(base), tmp_path)
    # (Its one warning is the 404 of /item/404.)
    assert [w["url"].rsplit("/", 2)[1:] for w in warnings] == [["item", "404"]]


def test_a_rule_request_survives_the_store() -> None:
    # --jobdir and Redis store requests as records: the rule's index and its
    # callbacks (spider methods, by name) come back.
    from crawlmesh._state import RequestCodec

    class Stored(CrawlSpider):
        rules = (Rule(LinkExtractor(), callback="parse_item", errback="lost"),)

        def parse_item(self, response: Response) -> None:
            return None

        def lost(self, error: FetchError) -> None:
            return None

    spider = Stored()
    codec = RequestCodec(spider, "--jobdir x")
    request = Request(
        "http://example.com/a", callback=spider._follow_rule, errback=spider._rule_failed, rule=0
    )
    back = codec.decode(codec.encode(request))
    assert back == request
    assert back.rule == 0


async def test_the_readme_example_crawls_the_demo_shop(tmp_path: Path) -> None:
    import re

    from crawlmesh._cli import DemoSite

    section = README[README.index("### Following links by rules: CrawlSpider") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    shop = DemoSite()
    async with open_site_server(shop.handle) as base:
        namespace: dict[str, Any] = {}
        exec(code[1].replace("http://127.0.0.1:8000", base), namespace)
        result = await crawl(namespace["Shelves"](), tmp_path)
    assert len(result.items) == shop.item_count == 200
    assert all(i["title"] and "/catalogue/book-" in i["url"] for i in result.items)
