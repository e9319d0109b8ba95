"""End-to-end crawls of a generated 2,000-page site over loopback."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from crawling import product, run_spider, whole_site
from crawlmesh import Request, Response, Spider
from sites import GeneratedSite


async def test_every_item_page_yields_exactly_one_item(
    generated: GeneratedSite, generated_url: str, tmp_path: Path
) -> None:
    stats, items, errors = await run_spider(whole_site(generated_url), tmp_path)
    skus = [item["sku"] for item in items]
    expected = {f"SKU-{n:06d}" for n in generated.item_pages()}
    assert len(skus) == len(set(skus)), "an item was delivered twice"
    assert set(skus) == expected
    assert stats.items == len(expected) == 667
    # Every page fetched once: the dupe filter saw through fragments,
    # reordered query strings and relative links.
    page_hits = [h for h in generated.hits if h.startswith("/p/")]
    paths = [h.partition("?")[0] for h in page_hits]
    assert sorted(set(paths)) == sorted(f"/p/{n}" for n in range(2000))
    assert len(page_hits) == len(set(page_hits)) == 2000
    # ?a=1&b=2 and ?b=2&a=1 are one URL.
    assert len([h for h in generated.hits if h.startswith("/list")]) == 1
    # Broken links are errors with their reason; nothing else failed.
    assert {e["kind"] for e in errors} == {"http_error"}
    assert all(e["status"] == 404 and "/missing/" in e["url"] for e in errors)
    assert stats.errors == len(errors) == stats.errors_by_kind["http_error"]
    assert stats.filtered["unsupported_scheme"] > 0
    assert stats.finish_reason == "finished"
    assert stats.unfinished == 0


class TreeWatcher:
    """The :func:`product` item, noting first, as each callback starts, how
    many earlier pages' selectors are still alive."""

    def __init__(self) -> None:
        self.trees: list[weakref.ref[Any]] = []
        self.most_alive = 0

    def __call__(self, response: Response) -> dict[str, Any] | None:
        alive = sum(1 for tree in self.trees if tree() is not None)
        self.most_alive = max(self.most_alive, alive)
        self.trees.append(weakref.ref(response.selector))
        return product(response)


async def test_a_page_and_its_tree_are_freed_once_its_callback_is_done(
    generated_url: str, tmp_path: Path
) -> None:
    # Nothing in the engine holds a page after its callback: not the fetch
    # worker until its next fetch ends, not the parse worker until the next
    # page comes (that kept up to `concurrency` parsed trees alive, and freed
    # each long after it left the CPU's caches).
    watcher = TreeWatcher()
    stats, items, _ = await run_spider(
        whole_site(generated_url, item=watcher),
        tmp_path,
        concurrency=16,
        parse_workers=1,
        max_pages=300,
    )
    assert len(watcher.trees) == stats.pages - stats.errors > 250
    assert items
    assert watcher.most_alive == 0


async def test_depth_limit(generated_url: str, tmp_path: Path) -> None:
    stats, _, _ = await run_spider(whole_site(generated_url), tmp_path, depth_limit=2)
    # Depth 0, 1 and 2 pages only: the tree gives 1 + 2 + 4 tree pages, plus
    # random extra links from those pages.
    assert stats.filtered["depth"] > 0
    assert stats.pages < 100


async def test_max_pages_stops_and_accounts_for_the_rest(
    generated_url: str, tmp_path: Path
) -> None:
    stats, _, errors = await run_spider(
        whole_site(generated_url), tmp_path, max_pages=50, concurrency=4
    )
    assert stats.finish_reason == "max_pages"
    assert 50 <= stats.pages + stats.errors_by_kind.get("http_error", 0) <= 54
    unfinished = [e for e in errors if e["kind"] == "unfinished"]
    assert len(unfinished) == stats.unfinished > 0


async def test_max_items(generated_url: str, tmp_path: Path) -> None:
    stats, items, _ = await run_spider(whole_site(generated_url), tmp_path, max_items=10)
    assert len(items) == stats.items == 10
    assert stats.finish_reason == "max_items"


async def test_allowed_domains_filters_offsite(generated_url: str, tmp_path: Path) -> None:
    class Offsite(Spider):
        allowed_domains = ["example.invalid"]
        start_urls = [generated_url + "/p/0"]

        def parse(self, response: Response) -> Any:
            yield Request(generated_url + "/p/1")

    stats, _, _ = await run_spider(Offsite(), tmp_path)
    # Start requests are checked too: nothing is fetched.
    assert stats.pages == 0
    assert stats.filtered["offsite"] == 1


async def test_start_urls_and_callbacks_of_every_shape(generated_url: str, tmp_path: Path) -> None:
    seen: list[str] = []

    class Shapes(Spider):
        def __init__(self) -> None:
            super().__init__()
            self.start_urls = [generated_url + "/p/0"]

        def parse(self, response: Response) -> Any:
            seen.append("sync-gen")
            yield Request(generated_url + "/p/1", callback=self.returns_list)
            yield Request(generated_url + "/p/2", callback=self.coroutine)
            yield Request(generated_url + "/p/3", callback=self.returns_one, cb_kwargs={"n": 3})

        def returns_list(self, response: Response) -> list[Any]:
            seen.append("list")
            return [{"n": 1}]

        async def coroutine(self, response: Response) -> dict[str, int]:
            seen.append("coroutine")
            return {"n": 2}

        def returns_one(self, response: Response, n: int) -> msgspec.Struct:
            seen.append("struct")

            class Item(msgspec.Struct):
                n: int

            return Item(n)

    _stats, items, _ = await run_spider(Shapes(), tmp_path)
    assert sorted(seen) == ["coroutine", "list", "struct", "sync-gen"]
    assert sorted(i["n"] for i in items) == [1, 2, 3]


async def test_priority_within_a_domain(
    generated: GeneratedSite, generated_url: str, tmp_path: Path
) -> None:
    class Prioritised(Spider):
        custom_settings = {"concurrency": 1, "concurrency_per_domain": 1}

        async def start(self) -> AsyncIterator[Request]:
            for n, prio in [(10, 0), (11, 5), (12, -1), (13, 5)]:
                yield Request(f"{generated_url}/p/{n}", priority=prio)

        def parse(self, response: Response) -> None:
            return None

    spider = Prioritised()
    # Custom settings are applied by the caller (the CLI layers them).
    await run_spider(spider, tmp_path, concurrency=1, concurrency_per_domain=1)
    order = [h for h in generated.hits if h.startswith("/p/")]
    # The first request is dispatched as soon as it is queued; the rest by priority.
    assert order[1:] == ["/p/11", "/p/13", "/p/12"] or order == ["/p/11", "/p/13", "/p/10", "/p/12"]
