"""The feed writers in-process: each format's record, cutting a feed back
to a committed length, CSV's header, XML's names, encodings, several feeds."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crawlmesh import JsonLinesWriter, UsageError
from crawlmesh._feeds import (
    FORMATS,
    LEGACY_KEY,
    CsvWriter,
    FeedOptions,
    FeedSpec,
    XmlWriter,
    format_for,
    open_feeds,
)
from crawlmesh._observe import StatsCollector
from crawlmesh._spider import Spider
from crawlmesh._state import JobDir

from .test_cli_feeds import read_feed


class Book(msgspec.Struct):
    title: str
    price: float


@dataclass
class Film:
    title: str
    price: float


ITEMS: list[Any] = [
    {"title": "Ünïcode ☕ <&>", "price": 1.5, "tags": ["a", "b"]},
    Book("naïve", 2.0),
    Film("x", 3.0),
    {"title": "t", "price": 4},
]


def test_each_format_is_declared_once() -> None:
    names = [fmt.name for fmt in FORMATS]
    extensions = [ext for fmt in FORMATS for ext in fmt.extensions]
    assert names == ["jsonl", "json", "csv", "xml"]
    assert len(set(extensions)) == len(extensions)
    assert [format_for(f"a{ext}").name for ext in extensions] == [
        "jsonl",
        "jsonl",
        "json",
        "csv",
        "xml",
    ]
    assert format_for("OUT.CSV").name == "csv"
    assert format_for("-").name == "jsonl"
    assert format_for("a.txt", "xml").name == "xml"
    assert {fmt.name for fmt in FORMATS if fmt.appends} == {"jsonl", "csv"}
    with pytest.raises(UsageError, match=r"a\.txt.*jsonl.*json.*csv.*xml"):
        format_for("a.txt")
    with pytest.raises(UsageError, match="unknown feed format 'tsv'"):
        format_for("a.csv", "tsv")


def _open(tmp_path: Path, name: str, **options: Any) -> Any:
    spec = FeedSpec(str(tmp_path / name), format_for(name), True, FeedOptions(**options))
    return open_feeds([spec])


@pytest.mark.parametrize("name", ["a.jsonl", "a.json", "a.csv", "a.xml"])
def test_a_feed_cut_to_a_committed_length_carries_on(tmp_path: Path, name: str) -> None:
    feeds = _open(tmp_path, name)
    marks = []
    for item in ITEMS:
        feeds.write_line(feeds.encode(item))
        marks.append(feeds.lengths())
    feeds.close()  # the footer: past every committed length
    resumed = open_feeds(
        [FeedSpec(str(tmp_path / name), format_for(name), False, FeedOptions())], resume=True
    )
    resumed.cut_to(marks[1])  # two pages committed, the rest cut off
    resumed.write_line(resumed.encode({"title": "after", "price": 9}))
    resumed.close()
    titles = [item["title"] for item in read_feed(tmp_path / name)]
    assert titles == ["Ünïcode ☕ <&>", "naïve", "after"]


@pytest.mark.parametrize("name", ["a.json", "a.csv", "a.xml"])
def test_a_feed_cut_to_nothing_starts_again(tmp_path: Path, name: str) -> None:
    feeds = _open(tmp_path, name)
    feeds.write_line(feeds.encode(ITEMS[1]))
    feeds.cut_to({str(tmp_path / name): 0})  # (a file new to a shared crawl)
    feeds.write_line(feeds.encode(ITEMS[2]))
    feeds.close()
    [item] = read_feed(tmp_path / name)
    assert item["title"] == "x"


def test_csv_keeps_its_header_and_counts_what_it_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    writer = CsvWriter(path)
    for item in [{"a": 1, "b": None}, {"b": "x", "c": 2, "d": 3}, {"c": 4}]:
        writer.write_line(writer.encode(item))
    assert writer.dropped == {"c": 2, "d": 1}
    writer.close()
    with path.open(newline="") as f:
        assert list(csv.DictReader(f)) == [
            {"a": "1", "b": ""},
            {"a": "", "b": "x"},
            {"a": "", "b": ""},
        ]
    again = CsvWriter(path, mode="append")  # appends under the file's own header
    again.write_line(again.encode({"b": "y", "a": [1]}))
    again.close()
    with path.open(newline="") as f:
        assert list(csv.DictReader(f))[-1] == {"a": "[1]", "b": "y"}
    with pytest.raises(UsageError, match="header row"):
        open_feeds([FeedSpec(str(path), format_for("a.csv"), False, FeedOptions(fields=("b",)))])


def test_fields_select_and_order_in_every_format(tmp_path: Path) -> None:
    for name in ("f.jsonl", "f.json", "f.csv", "f.xml"):
        feeds = _open(tmp_path, name, fields=("price", "title"))
        for item in ITEMS:
            feeds.write_line(feeds.encode(item))
        feeds.close()
        items = read_feed(tmp_path / name)
        assert [list(item) for item in items] == [["price", "title"]] * 4, name
        assert [str(item["price"]) for item in items] == ["1.5", "2.0", "3.0", "4"], name


def test_xml_nests_escapes_and_refuses_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    writer = XmlWriter(path, options=FeedOptions(indent=2))
    item = {"t": "a\x00b <&>", "d": {"k": True}, "l": [1, None], "e": {}}
    writer.write_line(writer.encode(item))
    for bad in ({"a b": 1}, {"1x": 1}, {"xmlns": 1}):
        with pytest.raises(ValueError, match="XML element name"):
            writer.encode(bad)
    writer.close()
    [element] = ET.parse(path).getroot()
    assert element.findtext("t") == "a\ufffdb <&>"
    assert element.findtext("d/k") == "true"
    assert [v.text for v in element.findall("l/value")] == ["1", None]


def test_encodings(tmp_path: Path) -> None:
    feeds = open_feeds(
        [
            FeedSpec(str(tmp_path / n), format_for(n), True, FeedOptions(encoding=e))
            for n, e in (("a.json", "latin-1"), ("a.xml", "ascii"), ("a.jsonl", "ascii"))
        ]
    )
    feeds.write_line(feeds.encode({"title": "é ☕ 𝄞"}))
    feeds.close()
    assert (tmp_path / "a.json").read_bytes() == b'[\n{"title":"\xe9 \\u2615 \\ud834\\udd1e"}\n]\n'
    assert read_feed(tmp_path / "a.json", "latin-1") == [{"title": "é ☕ 𝄞"}]
    assert read_feed(tmp_path / "a.jsonl", "ascii") == [{"title": "é ☕ 𝄞"}]
    assert ET.parse(tmp_path / "a.xml").getroot()[0][0].text == "é ☕ 𝄞"
    csv_feed = CsvWriter(tmp_path / "a.csv", options=FeedOptions(encoding="ascii"))
    with pytest.raises(UnicodeEncodeError):
        csv_feed.encode({"title": "é"})  # refused (an item_encode_error), not mangled
    csv_feed.close()


def test_an_item_one_feed_refuses_goes_to_none(tmp_path: Path) -> None:
    feeds = open_feeds([FeedSpec(str(tmp_path / n), format_for(n)) for n in ("a.jsonl", "a.xml")])
    with pytest.raises(ValueError, match="XML"):
        feeds.encode({"a b": 1})
    feeds.write_line(feeds.encode({"ok": 1}))
    feeds.close()
    assert read_feed(tmp_path / "a.jsonl") == [{"ok": 1}]
    assert read_feed(tmp_path / "a.xml") == [{"ok": "1"}]


def test_items_without_fields_are_refused_by_field_formats(tmp_path: Path) -> None:
    writer = CsvWriter(tmp_path / "a.csv")
    with pytest.raises(TypeError, match="fields"):
        writer.encode(["a", "list"])
    writer.close()
    lines = JsonLinesWriter(tmp_path / "a.jsonl")  # (JSON lines takes any JSON value)
    lines.write(["a", "list"])
    lines.close()
    assert read_feed(tmp_path / "a.jsonl") == [["a", "list"]]  # type: ignore[comparison-overlap]


def test_an_old_job_directory_s_length_is_the_first_feed_s(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job", Spider())
    job._put("items_length", 8)  # what a job directory before feeds held
    job.close(StatsCollector(), {})
    again = JobDir(tmp_path / "job", Spider())
    assert again.lengths == {LEGACY_KEY: 8}
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n')
    feeds = open_feeds([FeedSpec(str(path), format_for("a.jsonl"))], resume=True)
    feeds.cut_to(again.lengths)
    feeds.close()
    assert path.read_bytes() == b'{"a":1}\n'
    assert json.loads(path.read_bytes()) == {"a": 1}
