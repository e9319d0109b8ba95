"""Feeds written by ``crawlmesh crawl``, read back by the standard parsers
(``json``, ``csv``, ``xml.etree``): after a whole crawl, after Ctrl-C, and
after a kill -9 with ``--jobdir`` then a resume."""

from __future__ import annotations

import csv
import json
import signal
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .conftest import ITEMS

FEEDS = ("items.jsonl", "items.json", "items.csv", "items.xml")
FAST = ("-s", "concurrency=16", "-s", "concurrency_per_domain=16", "-s", "robots.obey=false")


def read_feed(path: Path, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """The items of a feed, as its format's standard parser reads them."""
    if path.suffix in (".jsonl", ".jl"):
        return [json.loads(line) for line in path.read_text(encoding).splitlines()]
    if path.suffix == ".json":
        with path.open(encoding=encoding) as f:
            data = json.load(f)
        assert isinstance(data, list)
        return data
    if path.suffix == ".csv":
        with path.open(encoding=encoding, newline="") as f:
            return list(csv.DictReader(f))
    root = ET.parse(path).getroot()
    assert root.tag == "items"
    return [{field.tag: field.text for field in item} for item in root]


def skus(items: list[dict[str, Any]]) -> list[str]:
    return [item["sku"] for item in items]


def test_every_format_after_a_whole_crawl(shop: Any, project: Path) -> None:
    args = [arg for path in FEEDS for arg in ("-o", path)]
    code, _ = shop(*args, *FAST).wait()
    assert code == 0
    feeds = {path: read_feed(project / path) for path in FEEDS}
    first = feeds["items.jsonl"]
    assert len(first) == ITEMS
    assert len(set(skus(first))) == ITEMS
    for path, items in feeds.items():
        assert skus(items) == skus(first), path  # every item to every feed, in one order
    by_sku = {item["sku"]: item for item in first}
    assert by_sku["SKU-000009"] == {"sku": "SKU-000009", "title": "Café ☕ n°9", "price": 9.99}
    assert list(by_sku["SKU-000009"]) == ["sku", "title", "price"]  # a Struct's order
    assert by_sku["SKU-000003"]["title"] == "Café ☕ n°3"  # a dataclass
    assert by_sku["SKU-000006"]["title"] == "Café ☕ n°6"  # a dict
    for items in (feeds["items.csv"], feeds["items.xml"]):
        for item in items:
            n = int(item["sku"].removeprefix("SKU-"))
            assert item == {"sku": item["sku"], "title": f"Café ☕ n°{n}", "price": f"{n}.99"}


def test_every_feed_is_valid_after_ctrl_c(shop: Any, project: Path) -> None:
    args = [arg for path in FEEDS for arg in ("-o", path)]
    run = shop(*args, "-s", "concurrency=2", "-s", "robots.obey=false")
    run.wait_for(project / "items.jsonl", b"SKU-", 5)
    run.proc.send_signal(signal.SIGINT)
    code, _ = run.wait()
    assert code == 130, run.stderr()
    first = read_feed(project / "items.jsonl")
    assert 5 <= len(first) < ITEMS, "the crawl was not interrupted"
    for path in FEEDS:
        items = read_feed(project / path)
        assert skus(items) == skus(first), path
    assert (project / "items.json").read_bytes().endswith(b"\n]\n")
    assert (project / "items.xml").read_bytes().endswith(b"</items>\n")


def test_kill_9_then_resume_gives_each_item_once(shop: Any, project: Path) -> None:
    outputs = [arg for path in FEEDS for arg in ("-o", path)]
    args = (*outputs, "--jobdir", "job", "-s", "concurrency=4", "-s", "robots.obey=false")
    first = shop(*args)
    first.wait_for(project / "items.jsonl", b"SKU-", 10)
    first.proc.kill()
    first.proc.wait()
    # Killed: the JSON array and the XML lack their footer until a resume.
    assert not (project / "items.json").read_bytes().endswith(b"]\n")
    second = shop(*args)
    assert second.wait()[0] == 0, second.stderr()
    for path in FEEDS:
        items = read_feed(project / path)
        assert sorted(skus(items)) == sorted({f"SKU-{n:06d}" for n in range(0, 300, 3)}), path


def test_o_appends_and_capital_o_overwrites(shop: Any, project: Path) -> None:
    out = project / "items.jsonl"
    out.write_text('{"sku": "before"}\n')
    assert shop("-o", "items.jsonl", "-s", "max_items=3", *FAST).wait()[0] == 0
    assert skus(read_feed(out))[0] == "before"
    assert len(read_feed(out)) == 4
    assert shop("-O", "items.jsonl", "-s", "max_items=3", *FAST).wait()[0] == 0
    assert "before" not in skus(read_feed(out))
    assert len(read_feed(out)) == 3


def test_appending_to_a_json_feed_is_refused(shop: Any, project: Path) -> None:
    (project / "items.json").write_text("[]\n")
    run = shop("-o", "items.json", *FAST)
    code, _ = run.wait()
    assert code == 2
    assert "cannot append to 'items.json'" in run.stderr()
    assert "-O" in run.stderr()
    assert (project / "items.json").read_text() == "[]\n"  # untouched
    (project / "empty.json").write_text("")  # an empty file may be appended to
    assert shop("-o", "empty.json", "-s", "max_items=2", *FAST).wait()[0] == 0
    assert len(read_feed(project / "empty.json")) == 2


def test_t_forces_the_format_even_on_stdout(shop: Any) -> None:
    # (max_items: an early stop closes the array.)
    code, out = shop("-o", "-", "-t", "json", "-s", "max_items=3", *FAST).wait()
    assert code == 0
    assert len(json.loads(out)) == 3


def test_stdout_stays_json_lines(shop: Any) -> None:
    code, out = shop("-s", "max_items=3", *FAST).wait()
    assert code == 0
    assert len([json.loads(line) for line in out.splitlines()]) == 3


def test_an_unknown_extension_is_one_usage_error(shop: Any, project: Path) -> None:
    run = shop("-o", "items.txt", *FAST)
    code, _ = run.wait()
    assert code == 2
    message = run.stderr()
    assert "items.txt" in message
    assert all(name in message for name in ("jsonl", "json", "csv", "xml"))
    assert "Traceback" not in message
    assert not (project / "items.txt").exists()


def test_feeds_setting_selects_fields_and_encoding(shop: Any, project: Path) -> None:
    (project / "settings.toml").write_text(
        """
[feeds."out/items.csv"]
fields = ["price", "sku"]
encoding = "latin-1"
overwrite = true

[feeds."out/items.json"]
fields = ["title"]
encoding = "ascii"
indent = 2
"""
    )
    (project / "out").mkdir()
    code, out = shop("--settings", "settings.toml", "-s", "max_items=5", *FAST).wait()
    assert code == 0
    assert out == b""  # the feeds replace stdout
    rows = read_feed(project / "out" / "items.csv", encoding="latin-1")
    assert len(rows) == 5
    assert all(list(row) == ["price", "sku"] for row in rows)
    raw = (project / "out" / "items.json").read_bytes()
    assert raw.isascii()  # non-ASCII text as \\u escapes
    titles = read_feed(project / "out" / "items.json", encoding="ascii")
    assert all(list(item) == ["title"] and item["title"].startswith("Café ☕") for item in titles)


def test_a_bad_feed_setting_names_its_key(shop: Any, project: Path) -> None:
    (project / "settings.toml").write_text('[feeds."x.csv"]\nfields = "title"\n')
    run = shop("--settings", "settings.toml", *FAST)
    assert run.wait()[0] == 2
    assert 'feeds."x.csv".fields' in run.stderr()
