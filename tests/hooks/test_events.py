"""Events: every kind delivered to sync and async subscribers in the
spider, pipelines and extensions, agreeing with the stats; failing
handlers; and the lag bound on async handlers (virtual time)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from crawling import run_engine
from crawlmesh import (
    DropItem,
    Event,
    Events,
    ItemDropped,
    ItemScraped,
    RequestDropped,
    RequestFailed,
    RequestScheduled,
    ResponseReceived,
    SpiderClosed,
    SpiderOpened,
)
from crawlmesh._hooks import LAG_LIMIT

from .shop import Shop, number

NO_ROBOTS = {"robots.obey": False, "progress_interval": 0}


class Recorder:
    """An extension that counts every event kind, asynchronously."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.order: list[str] = []

    def subscribe(self, events: Events) -> None:
        for kind in (SpiderOpened, SpiderClosed, RequestDropped, RequestFailed, ItemDropped):
            events.subscribe(kind, self.record)

    async def record(self, event: Event) -> None:
        await trio.lowlevel.checkpoint()
        self.kinds[type(event).__name__] += 1
        self.order.append(type(event).__name__)

    def open(self, spider: object) -> None:
        self.order.append("open")

    def close(self, spider: object) -> None:
        self.order.append("close")


class Fives:
    """Drops the items of pages divisible by five."""

    def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
        if number(item) % 5 == 0:
            raise DropItem("fives")
        return item


class Watching(Shop):
    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.scraped: list[Any] = []
        self.scheduled = 0
        self.responses = 0

    def subscribe(self, events: Events) -> None:
        events.subscribe(ItemScraped, lambda e: self.scraped.append(e.item))
        events.subscribe(RequestScheduled, self.on_scheduled)
        events.subscribe(ResponseReceived, self.on_response)

    def on_scheduled(self, event: RequestScheduled) -> None:
        self.scheduled += 1

    async def on_response(self, event: ResponseReceived) -> None:
        assert event.response.request is event.request
        self.responses += 1


async def test_every_event_kind_agrees_with_the_stats(shop_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    spider = Watching(shop_url, pipelines=[Fives()], extensions=[recorder])
    crawl, _ = await run_engine(spider, tmp_path, NO_ROBOTS)
    stats = crawl.stats
    assert spider.scraped == crawl.items
    assert spider.scheduled == stats.requests_scheduled
    assert spider.responses == stats.pages
    assert recorder.kinds["RequestDropped"] == sum(stats.filtered.values())
    assert recorder.kinds["RequestFailed"] == stats.errors == len(crawl.errors)
    assert recorder.kinds["ItemDropped"] == stats.items_dropped["fives"] > 0
    assert recorder.order[:2] == ["open", "SpiderOpened"]
    assert recorder.order[-2:] == ["close", "SpiderClosed"]
    assert recorder.kinds["SpiderClosed"] == 1


class Faulty(Shop):
    def subscribe(self, events: Events) -> None:
        events.subscribe(ItemScraped, self.explode)

    def explode(self, event: ItemScraped) -> None:
        raise ZeroDivisionError("in a handler")


async def test_a_handler_that_raises_is_counted_and_the_crawl_goes_on(
    shop_url: str, tmp_path: Path
) -> None:
    crawl, _ = await run_engine(Faulty(shop_url), tmp_path, NO_ROBOTS)
    assert crawl.stats.hook_errors == {"Faulty.explode": crawl.stats.items}
    assert crawl.stats.items > 0
    assert crawl.stats.finish_reason == "finished"


def test_subscribe_refuses_what_is_no_event_type() -> None:
    events = Events()
    with pytest.raises(TypeError, match="takes an event type"):
        events.subscribe(dict, print)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="is not callable"):
        events.subscribe(ItemScraped, "print")  # type: ignore[arg-type]


async def test_a_slow_async_handler_holds_the_emitter_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = Events()
    handled: list[float] = []

    async def slow(event: SpiderOpened) -> None:
        await trio.sleep(1)
        handled.append(trio.current_time())

    events.subscribe(SpiderOpened, slow)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(events.run)
        for _ in range(LAG_LIMIT + 5):
            events.emit(SpiderOpened(object()))
        assert events.lagging
        start = trio.current_time()
        await events.wait_for_room()
        assert not events.lagging
        assert trio.current_time() - start == pytest.approx(5, abs=1)  # 4-5 handled first
        events.close()
    assert len(handled) == LAG_LIMIT + 5, "the queue drains on close"
