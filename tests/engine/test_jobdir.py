"""The job directory's store: requests, fingerprints and stats survive a
reopen; what cannot be stored is refused with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from crawling import whole_site
from crawlmesh import Engine, Request, Response, SettingsError, Spider
from crawlmesh._cli import open_sinks
from crawlmesh._observe import StatsCollector
from crawlmesh._settings import load_settings
from crawlmesh._state import JobDir, NotPersistable
from sites import GeneratedSite


class Shop(Spider):
    def parse(self, response: Response) -> Any:
        yield {}

    def parse_item(self, response: Response) -> Any:
        yield {}


class Odd:
    """Not msgpack-encodable; pickled instead."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Odd) and other.x == self.x


def test_requests_fingerprints_and_stats_survive_a_reopen(tmp_path: Path) -> None:
    spider = Shop()
    job = JobDir(tmp_path / "job", spider)
    assert not job.resumed
    assert job.add(b"a" * 16)
    assert not job.add(b"a" * 16)
    done = Request("http://a.test/1")
    kept = Request(
        "http://a.test/2", callback=spider.parse_item, errback=spider.parse, priority=3,
        meta={"n": 1, "odd": Odd(7)}, cb_kwargs={"k": "v"}, headers={"X": "1"}, body=b"\x00",
        depth=2, region="eu-west", session="s1", method="POST", dont_filter=True,
        referer="http://a.test/list",
    )  # fmt: skip
    job.queued("a.test", done)
    job.queued("a.test", kept)
    job.queued("a.test", kept)  # queued again (a retry): one row
    job.finished(done)
    stats = StatsCollector()
    stats.pages, stats.items = 5, 4
    stats.errors["http_error"] += 2
    stats.status[200] += 5
    job.mark_start_done()
    job.close(stats, {"items.jsonl": 123})

    again = JobDir(tmp_path / "job", Shop())
    assert again.resumed
    assert again.start_done
    assert again.lengths == {"items.jsonl": 123}
    assert len(again) == 1
    assert not again.add(b"a" * 16)
    [(domain, request)] = again.pending()
    assert domain == "a.test"
    assert request.url == kept.url
    assert request.callback is not None
    assert request.callback.__name__ == "parse_item"
    assert request.meta == {"n": 1, "odd": Odd(7)}
    assert (request.priority, request.depth, request.method, request.body) == (
        3,
        2,
        "POST",
        b"\x00",
    )
    assert (request.region, request.session, request.dont_filter) == ("eu-west", "s1", True)
    assert request.referer == "http://a.test/list"
    restored = StatsCollector()
    again.restore_stats(restored)
    assert (restored.pages, restored.items) == (5, 4)
    assert restored.errors["http_error"] == 2
    assert restored.status[200] == 5


def test_a_callback_that_is_not_a_spider_method_is_refused(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job", Shop())
    with pytest.raises(NotPersistable, match="not a method of the spider"):
        job.queued("a.test", Request("http://a.test/", callback=lambda r: None))
    with pytest.raises(NotPersistable, match="cannot be stored"):
        job.queued("a.test", Request("http://a.test/", meta={"f": lambda: None}))


def test_a_spider_that_lost_a_callback_cannot_resume(tmp_path: Path) -> None:
    spider = Shop()
    job = JobDir(tmp_path / "job", spider)
    job.queued("a.test", Request("http://a.test/", callback=spider.parse_item))
    job.close(StatsCollector(), {})

    class Renamed(Spider):
        def parse(self, response: Response) -> Any:
            yield {}

    with pytest.raises(SettingsError, match="parse_item"):
        JobDir(tmp_path / "job", Renamed()).pending()


def test_an_unusable_directory_is_a_settings_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match="--jobdir"):
        JobDir(blocker / "job", Shop())


def test_requests_dropped_by_their_caller_each_keep_a_row(tmp_path: Path) -> None:
    # A request refused while stopping is stored and then dropped; CPython
    # reuses its id for the next one, which must get its own row all the same.
    job = JobDir(tmp_path / "job", Shop())
    for n in range(50):
        job.queued("a.test", Request(f"http://a.test/{n}"))
    job.close(StatsCollector(), {})
    again = JobDir(tmp_path / "job", Shop())
    assert [r.url for _, r in again.pending()] == [f"http://a.test/{n}" for n in range(50)]


async def test_a_crawl_stopped_by_max_pages_resumes_where_it_stopped(
    generated: GeneratedSite, generated_url: str, tmp_path: Path
) -> None:
    # Each run stops after 400 pages; run after run, the crawl completes with
    # every page fetched once and every item written once.
    settings = load_settings([("test", {"max_pages": 400, "concurrency": 8})])
    reasons = []
    for _ in range(10):
        spider = whole_site(generated_url)
        sinks = open_sinks(
            spider, settings, output=tmp_path / "items.jsonl", errors=None, jobdir=tmp_path / "job"
        )
        engine = Engine(spider, settings, items=sinks.items, backend=sinks.backend)
        try:
            stats = await engine.run()
        finally:
            sinks.close()
        reasons.append(stats.finish_reason)
        if stats.finish_reason == "finished":
            break
    assert len(reasons) > 3
    assert reasons[0] == "max_pages"
    assert reasons[-1] == "finished"
    lines = (tmp_path / "items.jsonl").read_bytes().splitlines()
    skus = [msgspec.json.decode(line)["sku"] for line in lines]
    assert sorted(skus) == sorted(f"SKU-{n:06d}" for n in generated.item_pages())
    page_hits = [h.partition("?")[0] for h in generated.hits if h.startswith("/p/")]
    assert sorted(page_hits) == sorted(f"/p/{n}" for n in range(2000))  # each once
    assert stats.items == len(skus)  # the counts carried over every resume
