"""Bad input never kills a crawl.

A callback that raises, malformed HTML, invalid or non-http(s) links,
non-UTF-8 bodies, a server that never answers, a connection reset mid-body, a
redirect loop, an oversized or gzip-bomb body: each is logged with its URL,
counted by kind, written to the errors file, and the crawl goes on.

Every crawl here runs against the hostile loopback site, with a good page in
the same start requests, and in virtual time (``virtual_clock``): a 30 s read
timeout fires as soon as every task is waiting, so a server that never answers
costs nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.testing

import crawling
from crawling import Crawl, Pages
from crawlmesh import (
    ConnectionBroken,
    FetchError,
    FetchTimeout,
    HttpError,
    Request,
    Response,
    ResponseTooLarge,
    Spider,
)
from crawlmesh._util._log import configure_logging
from sites import HostileSite

MiB = 1024 * 1024

# Small limits so that the oversized bodies and bombs are cut off quickly;
# the timeouts keep their defaults (30 s read, 120 s total): virtual time.
BASE_SETTINGS: dict[str, Any] = {"progress_interval": 0, "max_response_size": MiB}

run_spider = functools.partial(crawling.run_spider, **BASE_SETTINGS)
"""Every crawl here is :func:`crawling.run_spider` with ``BASE_SETTINGS``
(a test's own settings win)."""


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Log entries (warnings and up) emitted during the test."""
    configure_logging("warning")
    with structlog.testing.capture_logs() as entries:
        yield entries


def page_text(response: Response) -> dict[str, Any]:
    """A page's item: its URL, title and text (the text fails a body that is
    not text)."""
    return {
        "url": response.url,
        "title": response.css("h1.title::text").get(),
        "text": response.text,
    }


def pages(urls: list[str], *, follow: bool = False) -> Pages:
    """One :func:`page_text` item per page; optionally follows links. The
    start requests pass the dupe filter, as a spider's ``start_urls`` do."""
    return Pages(urls, follow=follow, item=page_text, dont_filter=True)


# (path, kind, what the reason says, extra settings)
HOSTILE = [
    pytest.param("/never", "read_timeout", r"read timeout", {}, id="never-answers"),
    pytest.param("/drip", "read_timeout", r"read timeout", {}, id="stalls-mid-body"),
    pytest.param(
        "/never",
        "total_timeout",
        r"longer than 5 s",
        {"timeouts.total": 5},
        id="whole-request-deadline",
    ),
    pytest.param("/reset-mid-body", "connection_error", r"\S", {}, id="reset-mid-body"),
    pytest.param(
        "/close-mid-body",
        "connection_error",
        r"without sending complete message body",
        {},
        id="closed-mid-body",
    ),
    pytest.param("/garbage", "connection_error", r"invalid HTTP response", {}, id="not-http"),
    pytest.param("/nul-header", "connection_error", r"NUL", {}, id="nul-in-header"),
    pytest.param("/bare-cr-header", "connection_error", r"bare CR", {}, id="bare-cr-in-header"),
    pytest.param(
        "/unknown-transfer-coding",
        "connection_error",
        r"unsupported transfer coding",
        {},
        id="unknown-transfer-coding",
    ),
    pytest.param(
        "/huge-trailers", "connection_error", r"trailers larger than 64 KiB", {}, id="huge-trailers"
    ),
    pytest.param("/loop-a", "redirect_loop", r"redirect loop", {}, id="redirect-loop"),
    pytest.param(
        "/chain/11", "too_many_redirects", r"more than 10 redirects", {}, id="redirect-chain"
    ),
    pytest.param(
        "/chain/3",
        "too_many_redirects",
        r"more than 2 redirects",
        {"max_redirects": 2},
        id="redirect-chain-over-max-redirects",
    ),
    pytest.param(
        "/redirect-bad-scheme", "bad_redirect", r"ftp://127\.0\.0\.1/x", {}, id="redirect-ftp"
    ),
    pytest.param("/huge", "too_large", r"Content-Length \d+ exceeds", {}, id="huge"),
    pytest.param("/huge-chunked", "too_large", r"size limit", {}, id="huge-chunked"),
    pytest.param("/gzip-bomb", "too_large", r"size limit", {}, id="gzip-bomb"),
    pytest.param("/br-bomb", "too_large", r"size limit", {}, id="br-bomb"),
    pytest.param("/corrupt-gzip", "decoding_error", r"corrupt", {}, id="corrupt-gzip"),
    pytest.param("/no-such-page", "http_error", r"HTTP 404", {}, id="404"),
]


@pytest.mark.parametrize(("path", "kind", "reason", "settings"), HOSTILE)
async def test_hostile_page_is_counted_logged_and_the_crawl_goes_on(
    loopback_clock: trio.testing.MockClock,
    hostile: HostileSite,
    hostile_url: str,
    tmp_path: Path,
    logs: list[dict[str, Any]],
    path: str,
    kind: str,
    reason: str,
    settings: dict[str, Any],
) -> None:
    bad, good = hostile_url + path, hostile_url + "/ok"
    crawl = await run_spider(pages([bad, good]), tmp_path, **settings)

    assert crawl.stats.finish_reason == "finished"
    assert path in hostile.hits
    # The good page's item is delivered, and nothing from the bad one.
    assert [(i["url"], i["title"]) for i in crawl.items] == [(good, "ok")]
    # Counted under its kind, and only there.
    assert crawl.stats.errors_by_kind == {kind: 1}
    assert crawl.stats.errors == 1
    # One line in the errors file, with the URL and the reason.
    [error] = crawl.errors
    assert error["url"] == bad
    assert error["kind"] == kind
    assert re.search(reason, error["reason"]), error["reason"]
    if kind == "http_error":
        assert error["status"] == 404
    # Logged with its URL.
    failed = [e for e in logs if e["event"] == "request failed"]
    assert [(e["url"], e["kind"]) for e in failed] == [(bad, kind)]
    assert crawl.stats.unfinished == 0


async def test_every_hostile_page_in_one_crawl(
    loopback_clock: trio.testing.MockClock,
    hostile_url: str,
    tmp_path: Path,
) -> None:
    bad = {
        "/never": "read_timeout",
        "/drip": "read_timeout",
        "/reset-mid-body": "connection_error",
        "/close-mid-body": "connection_error",
        "/garbage": "connection_error",
        "/loop-a": "redirect_loop",
        "/chain/12": "too_many_redirects",
        "/redirect-bad-scheme": "bad_redirect",
        "/huge": "too_large",
        "/huge-chunked": "too_large",
        "/gzip-bomb": "too_large",
        "/corrupt-gzip": "decoding_error",
    }
    good = ["/ok", "/chain/2", "/deflate", "/br", "/latin1", "/malformed"]
    urls = [hostile_url + p for p in [*bad, *good]]
    crawl = await run_spider(pages(urls), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.titles() == {"ok", "end of chain", "deflated", "brotli", "Café crème", "unclosed "}
    assert len(crawl.items) == len(good)
    assert {e["url"].removeprefix(hostile_url): e["kind"] for e in crawl.errors} == bad
    assert len(crawl.errors) == len(bad)
    expected: dict[str, int] = {}
    for kind in bad.values():
        expected[kind] = expected.get(kind, 0) + 1
    assert crawl.stats.errors_by_kind == expected


async def test_encodings_and_charsets_decode_without_errors(
    hostile_url: str, tmp_path: Path
) -> None:
    paths = ["/deflate", "/br", "/latin1", "/meta-charset", "/bad-utf8", "/ok"]
    crawl = await run_spider(pages([hostile_url + p for p in paths]), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.errors == []
    titles = {i["url"].removeprefix(hostile_url): i["title"] for i in crawl.items}
    assert titles == {
        "/deflate": "deflated",  # zlib-wrapped deflate
        "/br": "brotli",
        "/latin1": "Caf\u00e9 cr\u00e8me",  # charset from Content-Type
        "/meta-charset": "\u041f\u0440\u0438\u0432\u0435\u0442",  # from <meta charset>
        "/bad-utf8": "broken \ufffd\ufffd bytes",  # invalid bytes replaced
        "/ok": "ok",
    }


async def test_an_undeclared_charset_that_is_not_utf8_is_windows_1252(
    hostile_url: str, tmp_path: Path
) -> None:
    crawl = await run_spider(pages([hostile_url + "/undeclared-1252"]), tmp_path)

    assert crawl.errors == []
    # As a browser shows it; UTF-8 would have given U+FFFD for each.
    assert crawl.titles() == {"caf\u00e9 \u20ac5 \u201cquoted\u201d"}


async def test_bodies_that_are_not_pages_give_no_items_and_no_links(
    hostile: HostileSite, hostile_url: str, tmp_path: Path
) -> None:
    # The README's spider: a title, then every link.
    files = hostile_url + "/files"
    crawl = await run_spider(pages([files], follow=True), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.titles() == {"files", "ok"}
    # The zip's "link" to /chain/0 was never followed.
    assert "/chain/0" not in hostile.hits
    errors = {e["url"].removeprefix(hostile_url): e for e in crawl.errors}
    assert set(errors) == {"/files/a.zip", "/files/b.png", "/json"}
    for path, ctype in [
        ("/files/a.zip", "application/zip"),
        ("/files/b.png", "image/png"),  # no Content-Type: sniffed
        ("/json", "application/json"),
    ]:
        assert errors[path]["kind"] == "callback_error"
        reason = errors[path]["reason"]
        assert f"NotTextResponse: {hostile_url}{path} is {ctype}, not text" in reason
        assert errors[path]["referer"] == files

    # A spider that looks first, and follow_all(), handle them without errors.
    class Careful(Spider):
        start_urls = [files]

        def parse(self, response: Response) -> Iterator[Any]:
            yield {"url": response.url, "type": response.content_type, "size": len(response.body)}
            yield from response.follow_all(css="a")

    hostile.hits.clear()
    crawl = await run_spider(Careful(), tmp_path)
    assert crawl.errors == []
    types = {i["url"].removeprefix(hostile_url): i["type"] for i in crawl.items}
    assert types == {
        "/files": "text/html",
        "/files/a.zip": "application/zip",
        "/files/b.png": "image/png",
        "/json": "application/json",
        "/ok": "text/html",
    }
    assert "/chain/0" not in hostile.hits


ERROR_FIELDS = {"url", "kind", "reason", "method", "depth", "status", "referer", "time"}


async def test_every_errors_file_line_names_its_method_and_referer(
    loopback_clock: trio.testing.MockClock, hostile_url: str, tmp_path: Path
) -> None:
    page = hostile_url + "/failing-links"

    class Linker(Spider):
        start_urls = [page, hostile_url + "/loop-b"]

        def parse(self, response: Response) -> Iterator[Any]:
            yield {"url": response.url}
            if response.url == page:
                yield from response.follow_all(css="a")
                yield response.follow("/close-mid-body", method="POST", body=b"x=1")

    crawl = await run_spider(Linker(), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    lines = {e["url"].removeprefix(hostile_url): e for e in crawl.errors}
    assert {path: e["kind"] for path, e in lines.items()} == {
        "/garbage": "connection_error",
        "/close-mid-body": "connection_error",
        "/nope": "http_error",
        "/loop-a": "redirect_loop",
        "/reset-mid-body": "connection_error",
        "/loop-b": "redirect_loop",
    }
    for path, e in lines.items():
        assert set(e) == ERROR_FIELDS, path  # every field on every line
        if path == "/loop-b":
            assert (e["referer"], e["depth"], e["method"]) == (None, 0, "GET")
        else:
            assert e["referer"] == page, path
            assert e["depth"] == 1
            assert e["method"] == ("POST" if path == "/close-mid-body" else "GET")
    assert lines["/nope"]["status"] == 404
    assert lines["/garbage"]["status"] is None


async def test_a_transfer_coded_page_reaches_the_spider_decoded(
    hostile_url: str, tmp_path: Path
) -> None:
    urls = [hostile_url + "/transfer-gzip", hostile_url + "/ok"]
    crawl = await run_spider(pages(urls), tmp_path)

    assert crawl.errors == []
    assert crawl.titles() == {"transfer-coded", "ok"}


async def test_thousands_of_gzip_members(hostile_url: str, tmp_path: Path) -> None:
    urls = [hostile_url + "/gzip-members", hostile_url + "/ok"]
    crawl = await run_spider(pages(urls), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.errors == []
    assert crawl.titles() == {"members", "ok"}


async def test_json_body(hostile_url: str, tmp_path: Path) -> None:
    class Json(Spider):
        start_urls = [hostile_url + "/json"]

        def parse(self, response: Response) -> Any:
            return {"data": response.json(), "ctype": response.headers["content-type"]}

    crawl = await run_spider(Json(), tmp_path)
    assert crawl.items == [{"data": {"a": [1, 2]}, "ctype": "application/json"}]


async def test_malformed_html_still_gives_its_title_and_links(
    hostile: HostileSite, hostile_url: str, tmp_path: Path
) -> None:
    urls = [hostile_url + "/malformed", hostile_url + "/ok"]
    crawl = await run_spider(pages(urls, follow=True), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.errors == []
    assert crawl.titles() == {"unclosed ", "ok", "end of chain"}
    assert "/chain/0" in hostile.hits


class AbsoluteOrFollow(Spider):
    """Follows links, building absolute URLs itself (no urljoin on them)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.start_urls = urls

    def parse(self, response: Response) -> Iterator[Any]:
        yield {"url": response.url, "title": response.css("h1.title::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield Request(href) if ":" in href else response.follow(href)


BAD_LINK_ERRORS = {
    "http://[::1": "invalid_url",
    "http://exa mple.invalid/": "invalid_url",
    "http://:80/": "invalid_url",
    "http://127.0.0.1:99999/": "invalid_url",
}


def _check_bad_links(crawl: Crawl, hostile_url: str) -> None:
    page = hostile_url + "/bad-links"
    assert crawl.stats.finish_reason == "finished"
    # ftp:, mailto: and javascript: are filtered quietly, not errors.
    assert crawl.stats.filtered.get("unsupported_scheme") == 3
    assert not any(e["url"].startswith(("ftp:", "mailto:", "javascript:")) for e in crawl.errors)
    # Malformed http(s) URLs are errors, each with its URL, reason and referer.
    assert {e["url"]: e["kind"] for e in crawl.errors} == BAD_LINK_ERRORS
    assert len(crawl.errors) == len(BAD_LINK_ERRORS)
    for e in crawl.errors:
        assert e["referer"] == page
        assert e["depth"] == 1
        assert e["reason"]
    assert crawl.stats.errors_by_kind == {"invalid_url": 4}
    # The good link on the same page is still followed.
    assert crawl.titles() == {"ok", "end of chain"}


async def test_bad_links_are_filtered_or_counted_and_the_good_one_followed(
    hostile_url: str, tmp_path: Path
) -> None:
    urls = [hostile_url + "/bad-links", hostile_url + "/ok"]
    crawl = await run_spider(AbsoluteOrFollow(urls), tmp_path)
    _check_bad_links(crawl, hostile_url)


async def test_bad_links_through_response_follow(hostile_url: str, tmp_path: Path) -> None:
    urls = [hostile_url + "/bad-links", hostile_url + "/ok"]
    crawl = await run_spider(pages(urls, follow=True), tmp_path)
    _check_bad_links(crawl, hostile_url)


async def test_bad_links_through_response_follow_all(hostile_url: str, tmp_path: Path) -> None:
    class FollowAll(Spider):
        start_urls = [hostile_url + "/bad-links", hostile_url + "/ok"]

        def parse(self, response: Response) -> Iterator[Any]:
            yield {"url": response.url, "title": response.css("h1.title::text").get()}
            yield from response.follow_all(css="a")

    crawl = await run_spider(FollowAll(), tmp_path)
    _check_bad_links(crawl, hostile_url)


@pytest.mark.parametrize("obey_robots", [False, True])
async def test_links_to_hosts_httpx_refuses_are_invalid_urls(
    hostile_url: str, tmp_path: Path, obey_robots: bool
) -> None:
    urls = [hostile_url + "/bad-host-links", hostile_url + "/ok"]
    crawl = await run_spider(pages(urls, follow=True), tmp_path, **{"robots.obey": obey_robots})

    assert crawl.stats.finish_reason == "finished"
    assert {e["url"]: e["kind"] for e in crawl.errors} == {
        "http://a\u200db.invalid/": "invalid_url",
        "http://[::1]x/": "invalid_url",
    }
    assert crawl.stats.errors_by_kind == {"invalid_url": 2}
    assert crawl.titles() == {"ok", "end of chain"}


async def test_links_to_hosts_httpx_refuses_name_their_referer(
    hostile_url: str, tmp_path: Path
) -> None:
    page = hostile_url + "/bad-host-links"
    crawl = await run_spider(pages([page], follow=True), tmp_path, **{"robots.obey": False})
    assert len(crawl.errors) == 2
    assert all(e["referer"] == page for e in crawl.errors)


async def test_redirect_to_a_host_urljoin_refuses(hostile_url: str, tmp_path: Path) -> None:
    bad = hostile_url + "/redirect-bad-bracket"
    crawl = await run_spider(pages([bad, hostile_url + "/ok"]), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert [(e["url"], e["kind"]) for e in crawl.errors] == [(bad, "bad_redirect")]
    assert crawl.titles() == {"ok"}


async def test_redirect_to_a_malformed_location_is_a_bad_redirect(
    hostile_url: str, tmp_path: Path
) -> None:
    bad = hostile_url + "/redirect-bad-ipv6"
    crawl = await run_spider(pages([bad, hostile_url + "/ok"]), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.titles() == {"ok"}
    assert [(e["url"], e["kind"]) for e in crawl.errors] == [(bad, "bad_redirect")]


@pytest.mark.parametrize("style", ["generator", "async-generator", "coroutine"])
async def test_a_callback_that_raises_fails_only_its_page(
    hostile_url: str, tmp_path: Path, logs: list[dict[str, Any]], style: str
) -> None:
    bad = hostile_url + "/json"
    urls = [hostile_url + "/ok", bad, hostile_url + "/chain/0"]

    class Flaky(Spider):
        start_urls = urls

        def parse(self, response: Response) -> Any:
            if style == "generator":
                return self.gen(response)
            if style == "async-generator":
                return self.agen(response)
            return self.coro(response)

        def gen(self, response: Response) -> Iterator[Any]:
            yield {"url": response.url, "n": 1}
            if response.url == bad:
                raise RuntimeError("boom")
            yield {"url": response.url, "n": 2}

        async def agen(self, response: Response) -> AsyncIterator[Any]:
            yield {"url": response.url, "n": 1}
            await trio.lowlevel.checkpoint()
            if response.url == bad:
                raise RuntimeError("boom")
            yield {"url": response.url, "n": 2}

        async def coro(self, response: Response) -> Any:
            if response.url == bad:
                raise RuntimeError("boom")
            return [{"url": response.url, "n": 1}, {"url": response.url, "n": 2}]

    crawl = await run_spider(Flaky(), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    delivered = sorted((i["url"], i["n"]) for i in crawl.items)
    expected = [(u, n) for u in urls if u != bad for n in (1, 2)]
    if style != "coroutine":
        expected.append((bad, 1))  # yielded before the raise: delivered
    assert delivered == sorted(expected)
    assert crawl.stats.errors_by_kind == {"callback_error": 1}
    [error] = crawl.errors
    assert error["url"] == bad
    assert error["kind"] == "callback_error"
    assert error["status"] == 200
    assert "RuntimeError: boom" in error["reason"]
    raised = [e for e in logs if e["event"] == "callback raised"]
    assert [e["url"] for e in raised] == [bad]


async def test_a_callback_that_raises_a_fetch_error_fails_its_page_with_that_kind(
    hostile_url: str, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    # (As SitemapSpider does for a gzip file that decompresses past the limit.)
    bad = hostile_url + "/json"

    class Picky(Spider):
        start_urls = [hostile_url + "/ok", bad]

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}
            if response.url == bad:
                raise ResponseTooLarge("unpacked body over the limit", request=response.request)

    crawl = await run_spider(Picky(), tmp_path)

    assert sorted(i["url"] for i in crawl.items) == sorted([hostile_url + "/ok", bad])
    assert crawl.stats.errors_by_kind == {"too_large": 1}
    [error] = crawl.errors
    assert (error["url"], error["kind"], error["status"]) == (bad, "too_large", 200)
    assert error["reason"] == "unpacked body over the limit"
    assert not [e for e in logs if e["event"] == "callback raised"]  # no traceback: not a bug


@pytest.mark.parametrize(
    ("path", "exc_type", "kind"),
    [
        ("/garbage", ConnectionBroken, "connection_error"),
        ("/never", FetchTimeout, "read_timeout"),
        ("/gzip-bomb", FetchError, "too_large"),
        ("/no-such-page", HttpError, "http_error"),
    ],
)
async def test_errback_gets_the_fetch_error_and_may_yield(
    loopback_clock: trio.testing.MockClock,
    hostile_url: str,
    tmp_path: Path,
    path: str,
    exc_type: type[FetchError],
    kind: str,
) -> None:
    bad = hostile_url + path
    seen: list[FetchError] = []

    class WithErrback(Spider):
        async def start(self) -> AsyncIterator[Request]:
            yield Request(bad, errback=self.failed)
            yield Request(hostile_url + "/ok", errback=self.failed)

        def parse(self, response: Response) -> Any:
            yield {"title": response.css("h1.title::text").get()}

        def failed(self, failure: FetchError) -> Iterator[Any]:
            seen.append(failure)
            yield {"failed": failure.request.url if failure.request else None, "kind": failure.kind}
            # An errback may schedule new requests, too.
            yield Request(hostile_url + "/chain/0")

    crawl = await run_spider(WithErrback(), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    [failure] = seen
    assert isinstance(failure, exc_type)
    assert failure.kind == kind
    assert failure.request is not None
    assert failure.request.url == bad
    if isinstance(failure, HttpError):
        assert failure.response.status == 404
    assert {"failed": bad, "kind": kind} in crawl.items
    assert crawl.titles() == {"ok", "end of chain"}
    assert len(crawl.items) == 3
    # The failure is still counted and recorded.
    assert [(e["url"], e["kind"]) for e in crawl.errors] == [(bad, kind)]
    assert crawl.stats.errors_by_kind == {kind: 1}


@pytest.mark.parametrize(
    ("path", "kind"), [("/garbage", "connection_error"), ("/nope", "http_error")]
)
async def test_an_errback_that_raises_still_ends_its_request_once(
    hostile_url: str, tmp_path: Path, logs: list[dict[str, Any]], path: str, kind: str
) -> None:
    bad = hostile_url + path

    class BadErrback(Spider):
        async def start(self) -> AsyncIterator[Request]:
            yield Request(bad, errback=self.failed)
            yield Request(hostile_url + "/ok")

        def parse(self, response: Response) -> Any:
            yield {"title": response.css("h1.title::text").get()}

        def failed(self, failure: FetchError) -> Any:
            yield {"salvaged": failure.kind}
            raise ValueError("errback broke")

    crawl = await run_spider(BadErrback(), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    # What it yielded before raising is kept, as for a callback.
    assert {"salvaged": kind} in crawl.items
    # One request, one ending: the failure's kind, the errback's error in its reason.
    assert crawl.stats.errors_by_kind == {kind: 1}
    [error] = crawl.errors
    assert (error["url"], error["kind"]) == (bad, kind)
    assert re.search(
        r"; errback \S*BadErrback\.failed raised ValueError: errback broke$", error["reason"]
    )
    assert [e["url"] for e in logs if e["event"] == "errback raised"] == [bad]


async def test_an_errback_gets_the_error_alone_while_the_callback_gets_cb_kwargs(
    hostile_url: str, tmp_path: Path
) -> None:
    class ScrapyStyle(Spider):
        async def start(self) -> AsyncIterator[Request]:
            for path in ("/garbage", "/nope", "/ok"):
                yield Request(
                    hostile_url + path,
                    callback=self.page,
                    errback=self.on_error,
                    cb_kwargs={"label": path},
                )

        def page(self, response: Response, label: str) -> Any:
            yield {"page": label}

        def on_error(self, failure: FetchError) -> Any:
            # cb_kwargs are the callback's; the request carries them.
            assert failure.request is not None
            yield {"failed": failure.request.cb_kwargs["label"], "kind": failure.kind}

    crawl = await run_spider(ScrapyStyle(), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert sorted(crawl.items, key=str) == sorted(
        [
            {"page": "/ok"},
            {"failed": "/garbage", "kind": "connection_error"},
            {"failed": "/nope", "kind": "http_error"},
        ],
        key=str,
    )
    assert crawl.stats.errors_by_kind == {"connection_error": 1, "http_error": 1}
    assert sorted(e["kind"] for e in crawl.errors) == ["connection_error", "http_error"]


# -- a hostile robots.txt ----------------------------------------------------------


async def test_binary_garbage_robots_txt_does_not_stop_the_crawl(
    hostile: HostileSite, hostile_url: str, tmp_path: Path
) -> None:
    hostile.robots = bytes(range(256)) * 50 + b"\nUser-agent: *\nDisallow: /chain/\n"
    urls = [hostile_url + "/ok", hostile_url + "/chain/0"]
    crawl = await run_spider(pages(urls), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.errors == []
    assert crawl.titles() == {"ok"}
    # The rule after the garbage still applies.
    assert crawl.stats.filtered == {"robots": 1}
    assert "/chain/0" not in hostile.hits


async def test_oversized_robots_txt_is_parsed_up_to_the_limit(
    hostile: HostileSite, hostile_url: str, tmp_path: Path
) -> None:
    hostile.robots = b"User-agent: *\nDisallow: /chain/\n" + b"# padding\n" * 60_000
    urls = [hostile_url + "/ok", hostile_url + "/chain/0"]
    crawl = await run_spider(pages(urls), tmp_path)

    assert crawl.stats.finish_reason == "finished"
    assert crawl.errors == []
    assert crawl.titles() == {"ok"}
    assert crawl.stats.filtered == {"robots": 1}
