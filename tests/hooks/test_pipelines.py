"""Item pipelines: order, drops, failures and their accounting, opening and
closing, and loading by import path, over whole crawls of a loopback shop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from crawling import run_engine
from crawlmesh import DropItem, Engine, HookError, JsonLinesWriter, SettingsError
from crawlmesh._settings import load_settings

from .shop import ITEMS, Shop, not_404, number

NO_ROBOTS = {"robots.obey": False, "progress_interval": 0}


class Log:
    """What the pipelines of one crawl did, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []


class Price:
    """Turns the price into a number (sync)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def open(self, spider: object) -> None:
        self.log.calls.append("open price")

    def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
        return {**item, "price": float(item["price"])}

    def close(self, spider: object) -> None:
        self.log.calls.append("close price")


class OddOut:
    """Drops the items of odd pages (async)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def open(self, spider: object) -> None:
        await trio.lowlevel.checkpoint()
        self.log.calls.append("open odd")

    async def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        assert isinstance(item["price"], float), "runs after Price"
        if number(item) % 2:
            raise DropItem("odd page")
        self.log.calls.append("item")
        return item

    async def close(self, spider: object) -> None:
        self.log.calls.append("close odd")


async def test_pipelines_run_in_order_and_drops_are_counted(shop_url: str, tmp_path: Path) -> None:
    log = Log()
    spider = Shop(shop_url, pipelines=[Price(log), OddOut(log)])
    crawl, _ = await run_engine(spider, tmp_path, NO_ROBOTS)
    even = [n for n in range(0, 60, 3) if n % 2 == 0]
    assert sorted(number(i) for i in crawl.items) == even
    assert all(isinstance(i["price"], float) for i in crawl.items)
    assert crawl.stats.items == len(even)
    assert crawl.stats.items_dropped == {"odd page": ITEMS - len(even)}
    assert not_404(crawl.errors) == []
    assert log.calls[:2] == ["open price", "open odd"]
    assert log.calls[-2:] == ["close price", "close odd"]
    assert log.calls.count("item") == len(even)


class Boom:
    """Fails on one page's item, and has a bug on every sixth."""

    def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
        if number(item) % 6 == 0:
            raise ValueError(f"cannot store {item['sku']}")
        return item


async def test_a_failing_pipeline_writes_the_item_off_and_the_crawl_goes_on(
    shop_url: str, tmp_path: Path
) -> None:
    crawl, _ = await run_engine(Shop(shop_url, pipelines=[Boom()]), tmp_path, NO_ROBOTS)
    failed = [n for n in range(0, 60, 3) if n % 6 == 0]
    assert sorted(number(i) for i in crawl.items) == [n for n in range(0, 60, 3) if n % 6]
    errors = not_404(crawl.errors)
    assert sorted(int(e["url"].rpartition("/")[2]) for e in errors) == failed
    for error in errors:
        assert error["kind"] == "pipeline_error"
        assert error["reason"].startswith("Boom.process_item raised ValueError: cannot store SKU-")
    assert crawl.stats.hook_errors == {"Boom.process_item": len(failed)}
    assert crawl.stats.items + len(errors) == ITEMS  # every item accounted for
    assert crawl.stats.finish_reason == "finished"


class Forgetful:
    def process_item(self, item: dict[str, Any], spider: object) -> None:
        item["seen"] = True  # and no return


async def test_a_pipeline_that_returns_none_drops_with_one_warning(
    shop_url: str, tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    crawl, _ = await run_engine(Shop(shop_url, pipelines=[Forgetful()]), tmp_path, NO_ROBOTS)
    assert crawl.items == []
    assert crawl.stats.items_dropped == {"Forgetful.process_item returned None": ITEMS}
    warnings = [e for e in warnings_logged if e["event"].startswith("a pipeline returned None")]
    assert len(warnings) == 1
    assert warnings[0]["pipeline"] == "Forgetful.process_item"


async def test_pipelines_by_import_path_come_before_the_spiders(
    shop_url: str, tmp_path: Path
) -> None:
    settings = {**NO_ROBOTS, "pipelines": ["hooks.plugins:Upper", "hooks.plugins.Tagger"]}
    crawl, _ = await run_engine(Shop(shop_url, pipelines=[Price(Log())]), tmp_path, settings)
    assert len(crawl.items) == ITEMS
    for item in crawl.items:
        assert item["title"].startswith("ITEM ")
        assert item["spider"] == "shop"
        assert isinstance(item["price"], float)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hooks.nowhere:Upper", "pipelines[0]: cannot import 'hooks.nowhere'"),
        ("hooks.plugins:Lower", "pipelines[0]: module 'hooks.plugins' has no 'Lower'"),
        ("Upper", "pipelines[0]: 'Upper' is not 'package.module:Name'"),
    ],
)
def test_a_pipeline_path_that_does_not_load_is_a_settings_error(
    path: str, message: str, tmp_path: Path
) -> None:
    settings = load_settings([("test", {"pipelines": [path]})])
    with pytest.raises(SettingsError, match=re.escape(message)):
        Engine(Shop("http://127.0.0.1:9"), settings, items=JsonLinesWriter(tmp_path / "i"))


class Unopenable:
    def __init__(self, log: Log) -> None:
        self.log = log

    def open(self, spider: object) -> None:
        raise ConnectionRefusedError("database is down")


async def test_a_pipeline_that_cannot_open_stops_the_crawl_before_it_starts(
    shop: Any, shop_url: str, tmp_path: Path
) -> None:
    log = Log()
    spider = Shop(shop_url, pipelines=[Price(log), Unopenable(log)])
    with pytest.raises(HookError, match=r"Unopenable.open raised ConnectionRefusedError: data"):
        await run_engine(spider, tmp_path, NO_ROBOTS)
    assert log.calls == ["open price", "close price"]  # what opened is closed again
    assert shop.hits == []
